"""Screenshots of built book pages, with headless Chromium and MathJax served locally.

    python tools/screenshot.py book/notation.html book/03_backprop.html#the-chain-rule-on-the-same-graph
    python tools/screenshot.py --out /tmp/shots --width 1280 --tile 1600 book/api.html

Pages are paths under the built book (``_build/html`` by default), with an optional
``#anchor`` to scroll to.  For each page it writes ``<out>/<page>.png``: the whole page
(measured after MathJax has typeset it, up to ``--height`` pixels), or, with an anchor,
one window of ``--tile`` pixels from there.  A whole page taller than ``--tile`` is also
cut into ``<out>/<page>-1.png``, ``-2.png``, ..., which are easier to read.

Offline: the built pages load MathJax from a CDN, which this machine cannot reach.  The
script copies the built book to a temporary folder, points every page's MathJax
``<script>`` at a local MathJax 3 installed with npm (into ``$STBP_MATHJAX``, default
``~/.cache/stbp-tools/mathjax``, outside the repository; installed on first use), and
gives Chromium a fresh profile and no network features.  Needs Debian's Chromium
(``apt-get update && apt-get install -y chromium``), npm, and Pillow (which matplotlib
brings).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image


MATHJAX_CDN = re.compile(r'src="https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/([\w.-]+\.js)"')
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio"]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: apt-get update && apt-get install -y chromium")


def local_mathjax():
    """The folder of MathJax 3's es5 build, installed with npm if it is not there yet."""
    root = Path(os.environ.get("STBP_MATHJAX", Path.home() / ".cache/stbp-tools/mathjax"))
    es5 = root / "node_modules/mathjax/es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        root.mkdir(parents=True, exist_ok=True)
        print(f"installing mathjax@3 into {root} (once)", file=sys.stderr)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root),
                        "mathjax@3"], check=True)
    return es5


def offline_copy(html_dir, es5):
    """A temporary copy of the built book whose pages load MathJax from _static/mathjax."""
    tmp = Path(tempfile.mkdtemp(prefix="stbp-shots-"))
    site = tmp / "html"
    shutil.copytree(html_dir, site)
    shutil.copytree(es5, site / "_static/mathjax")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if "mathjax@3" in text:
            rel = os.path.relpath(site / "_static/mathjax", page.parent)
            text = MATHJAX_CDN.sub(lambda m: f'src="{rel}/{m.group(1)}"', text)
        page.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    return tmp, site


#: Added to every page of the copy: keeps the page's height (after MathJax has typeset
#: it), and the offset of the element named by the URL's #anchor, in attributes of <html>,
#: which --dump-dom then shows.
MEASURE = ("<script>setInterval(function () { var h = document.documentElement;"
           " h.setAttribute('data-stbp-height', h.scrollHeight);"
           " var a = location.hash && document.getElementById(location.hash.slice(1));"
           " if (a) h.setAttribute('data-stbp-anchor',"
           " Math.round(a.getBoundingClientRect().top + window.scrollY)); }, 250);</script>")


def chromium_run(chromium, args, width, height, wait_ms):
    """Run headless Chromium with a fresh profile; return what it prints."""
    profile = tempfile.mkdtemp(prefix="stbp-chromium-")
    try:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               f"--window-size={width},{height}",
                               f"--virtual-time-budget={wait_ms}", *args],
                              check=True, capture_output=True, text=True, timeout=180).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def measure(chromium, url, width, wait_ms):
    """(height of the whole page, offset of the URL's #anchor or None), in CSS pixels."""
    dom = chromium_run(chromium, ["--dump-dom", url], width, 1000, wait_ms)
    height = re.search(r'data-stbp-height="(\d+)"', dom)
    anchor = re.search(r'data-stbp-anchor="(\d+)"', dom)
    if not height:
        sys.exit(f"could not measure the height of {url}")
    return int(height.group(1)), int(anchor.group(1)) if anchor else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", help="pages under the built book, e.g. "
                        "book/notation.html or book/03_backprop.html#anchor")
    parser.add_argument("--html", default="_build/html", help="the built book")
    parser.add_argument("--out", default="_build/screenshots", help="where the PNGs go")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=40000,
                        help="the most of a page that is captured, in pixels")
    parser.add_argument("--tile", type=int, default=1600,
                        help="cut pages taller than this into tiles of this height (0: no)")
    parser.add_argument("--wait", type=int, default=15000,
                        help="virtual milliseconds to let MathJax typeset before the shot")
    args = parser.parse_args(argv)

    html = Path(args.html)
    if not (html / "index.html").is_file():
        sys.exit(f"{html} holds no built book: run `make book` first")
    chromium = find_chromium()
    tmp, site = offline_copy(html, local_mathjax())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        for page in args.pages:
            path, _, anchor = page.partition("#")
            if not (site / path).is_file():
                sys.exit(f"no page {path} in {html}")
            stem = re.sub(r"[^\w.-]+", "_", path.removesuffix(".html")
                          + (f"-{anchor}" if anchor else ""))
            png = out / f"{stem}.png"
            url = (site / path).resolve().as_uri() + (f"#{anchor}" if anchor else "")
            height, top = measure(chromium, url, args.width, args.wait)
            if anchor and top is None:
                sys.exit(f"no element with id {anchor!r} in {path}")
            window = args.tile or 1000
            # an anchor's window is captured whole, however far down --height stops
            height = min(height, max(args.height, top + window) if anchor else args.height)
            bare = (site / path).resolve().as_uri()
            chromium_run(chromium, [f"--screenshot={png}", bare], args.width, height, args.wait)
            image = Image.open(png)
            written = [png]
            if anchor:                       # one window from just above the anchor
                top = max(0, top - 20)
                image.crop((0, top, image.width, min(image.height, top + window))).save(png)
            elif args.tile and image.height > args.tile:
                for k, top in enumerate(range(0, image.height, args.tile), start=1):
                    tile = out / f"{stem}-{k}.png"
                    image.crop((0, top, image.width, min(image.height, top + args.tile))
                               ).save(tile)
                    written.append(tile)
            print(" ".join(str(p) for p in written))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
