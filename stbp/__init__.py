"""stbp: spatio-temporal backpropagation (Wu et al. 2018) for spiking neural networks.

The modules are generated from the chapters of the book in ``book/`` (see the header of
each file); ``backend``, ``bench``, ``checkpoint``, ``checks``, ``data``, ``kernels`` and
``reproduce`` are hand-written.
"""
__version__ = "0.1.0"

from . import backend, backward, checkpoint, conv, data, encode, gradcheck, init, neuron, optim, stats, surrogates, train  # noqa: E402,F401
from .network import SNN, Trace  # noqa: E402,F401
