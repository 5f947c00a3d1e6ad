"""Figures the book draws with matplotlib alone: the unrolled space-time graph of chapter 3.

``draw_spacetime(ax)`` draws, with matplotlib alone, the forward graph of a network
with one hidden layer (n = 1) and an output layer (n = 2) unrolled over three time
steps: the input spikes O^{t,0}, each layer's potentials U^{t,n} and spikes O^{t,n},
and the loss L.  Edges are the dependencies of the forward pass (chapters 1 and 2):

* space: O^{t,n-1} -> U^{t,n} (through W^n) and U^{t,n} -> O^{t,n} (through g);
* time: the membrane carry U^{t,n} -> U^{t+1,n} (factor f(O^{t,n})) and the reset
  O^{t,n} -> U^{t+1,n} (through f);
* the loss: every O^{t,2} -> L (through the firing rate).

It marks in red one path that the seed's recursion drops (chapter 3): a path that
reaches a potential and leaves it through the membrane carry, here
O^{2,1} -> U^{2,2} -> U^{3,2} -> O^{3,2} -> L.  The seed keeps the carry inside the
potentials' error, E^{t} = Delta^{t} g'(U^{t}) + E^{t+1} f(O^{t}), but passes on to the
spikes below and before only Delta g'(U), the part of E that came through U's own spike;
what came back along the carry (E^{t+1} f(O^{t})) stops there.  The red path is thus
missing from the seed's Delta^{2,1}, and so from its gradients of W^1 and b^1.

Chapter 3 (``book/03_backprop.ipynb``, section "The chain rule on the same graph")
calls it.  Run the module to write the figure to a PNG:
``python -m stbp.figures [out.png]``.
"""
from __future__ import annotations

import sys

from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyBboxPatch

__all__ = ["draw_spacetime", "SPACE", "TIME", "DROPPED"]

#: Vertical positions: input spikes, then (potential, spike) of layers 1 and 2, the loss.
_Y = {("o", 0): 0.0, ("u", 1): 1.8, ("o", 1): 3.3, ("u", 2): 5.0, ("o", 2): 6.5}
_Y_LOSS = 8.2
_DX = 3.2                      # distance between time steps
_R = 0.47                      # node radius

#: Edge colours: spatial edges, temporal edges, the path the seed drops.
SPACE, TIME, DROPPED = "0.25", "tab:blue", "tab:red"


def _xy(kind, t, n):
    """Position of node u^{t,n} or o^{t,n}: a column per step, a row per quantity."""
    return ((t - 1) * _DX, _Y[(kind, n)])


def _node(ax, kind, t, n):
    x, y = _xy(kind, t, n)
    face = "white" if kind == "u" else "0.88"
    ax.add_patch(Circle((x, y), _R, facecolor=face, edgecolor="0.2", lw=1.2, zorder=3))
    sym = "U" if kind == "u" else "O"
    ax.text(x, y, f"${sym}^{{{t},{n}}}$", ha="center", va="center", fontsize=9.5, zorder=4)


def _edge(ax, a, b, color, lw=1.2, ls="-", rad=0.0):
    ax.annotate("", xy=b, xytext=a, zorder=2 if color != DROPPED else 5,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=lw, ls=ls,
                                shrinkA=_R * 26, shrinkB=_R * 26, mutation_scale=11,
                                connectionstyle=f"arc3,rad={rad}"))


def draw_spacetime(ax, T=3):
    """Draw the forward graph of a 2-layer network unrolled over T steps on ``ax``.

    Space runs upwards (layers), time to the right (steps). Black edges are spatial,
    blue ones temporal (solid: the membrane carry U^t -> U^{t+1}; dashed: the reset
    O^t -> U^{t+1}); the red path is one that the seed's recursion drops (module
    docstring). Returns ``ax``.
    """
    if int(T) != T or T < 3:
        raise ValueError(f"T must be an integer >= 3 (the red path needs 3 steps), got T = {T}")
    T = int(T)
    ax.set_aspect("equal")
    ax.axis("off")
    dropped = {(("o", 2, 1), ("u", 2, 2)), (("u", 2, 2), ("u", 3, 2)),
               (("u", 3, 2), ("o", 3, 2))}
    loss = ((T - 1) * _DX / 2, _Y_LOSS)

    def color(a, b, default):
        return (DROPPED, 2.6) if (a, b) in dropped else (default, 1.2)

    for t in range(1, T + 1):
        _node(ax, "o", t, 0)
        for n in (1, 2):
            _node(ax, "u", t, n)
            _node(ax, "o", t, n)
            below = ("o", t, n - 1)
            c, lw = color(below, ("u", t, n), SPACE)
            _edge(ax, _xy(*below), _xy("u", t, n), c, lw)                  # W^n
            c, lw = color(("u", t, n), ("o", t, n), SPACE)
            _edge(ax, _xy("u", t, n), _xy("o", t, n), c, lw)               # g
            if t < T:
                c, lw = color(("u", t, n), ("u", t + 1, n), TIME)
                _edge(ax, _xy("u", t, n), _xy("u", t + 1, n), c, lw)       # carry
                _edge(ax, _xy("o", t, n), _xy("u", t + 1, n), TIME, ls="--")  # reset
        last = t == 3
        _edge(ax, _xy("o", t, 2), loss, DROPPED if last else SPACE, 2.6 if last else 1.0)
    ax.add_patch(Circle(loss, _R, facecolor="white", edgecolor="0.2", lw=1.2, zorder=3))
    ax.text(*loss, "$L$", ha="center", va="center", fontsize=11, zorder=4)

    right = (T - 1) * _DX + _R
    for n, label in ((0, "input\n$n = 0$"), (1, "hidden\n$n = 1$"), (2, "output\n$n = 2$")):
        y = _Y[("o", 0)] if n == 0 else (_Y[("u", n)] + _Y[("o", n)]) / 2
        ax.text(-_R - 0.5, y, label, ha="right", va="center", fontsize=9)
    for t in range(1, T + 1):
        ax.text(_xy("u", t, 1)[0], -0.9, f"$t = {t}$", ha="center", va="top",
                fontsize=10)
    ax.annotate("", xy=(right, -1.55), xytext=(-_R, -1.55),
                arrowprops=dict(arrowstyle="-|>", color="0.5", lw=1))
    ax.text(right, -1.75, "time", ha="right", va="top", fontsize=9, color="0.4")

    ax.add_patch(FancyBboxPatch((right + 0.8, 1.6), 5.5, 5.2, boxstyle="round,pad=0.15",
                                facecolor="#fff5f5", edgecolor=DROPPED, lw=0.8))
    ax.text(right + 0.95, 6.6,
            "Dropped by the seed:\n"
            "the error that comes back\n"
            r"along the carry $U^{2,2} \to U^{3,2}$" "\n"
            r"is part of $E^{2,2}$, but only" "\n"
            r"$\Delta^{2,2} g'(U^{2,2})$ is passed on" "\n"
            r"to $O^{2,1}$ (through $W^2$) and" "\n"
            r"to $O^{1,2}$ (through the reset)." "\n"
            "So the path\n"
            r"$O^{2,1} \to U^{2,2} \to U^{3,2} \to O^{3,2} \to L$" "\n"
            r"is missing from the seed's $\Delta^{2,1}$," "\n"
            r"hence from its gradient of $W^1$, $b^1$.",
            ha="left", va="top", fontsize=8.5, linespacing=1.4)
    handles = [Line2D([], [], color=SPACE, lw=1.2, label="space: $W^n$, $g$"),
               Line2D([], [], color=TIME, lw=1.2, label="time: carry $U^t \\to U^{t+1}$"),
               Line2D([], [], color=TIME, lw=1.2, ls="--",
                      label="time: reset $O^t \\to U^{t+1}$"),
               Line2D([], [], color=DROPPED, lw=2.6, label="a path the seed drops")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.02), fontsize=8.5,
              frameon=False, ncol=2)
    ax.set_xlim(-2.4, right + 6.5)
    ax.set_ylim(-2.3, _Y_LOSS + 1.6)
    return ax


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6.2))
    draw_spacetime(ax)
    out = sys.argv[1] if len(sys.argv) > 1 else "spacetime.png"
    fig.savefig(out, dpi=120, bbox_inches="tight")
    print(out)
