"""stbp: spatio-temporal backpropagation (Wu et al. 2018) for spiking neural networks.

The modules are generated from the chapters of the book in ``book/`` (see the header of
each file); ``backend``, ``bench``, ``checkpoint``, ``checks``, ``data``, ``engine``,
``env``, ``files``, ``kernels``, ``reproduce`` and ``spec`` are hand-written.  Importing the
package changes no process-wide state (``stbp.backend.tune_process`` does, on request).
"""
__version__ = "0.1.0"

from . import (backend, backward, checkpoint, conv, data, encode, engine,  # noqa: E402,F401
               gradcheck, init, neuron, optim, spec, stats, surrogates, train)
from .network import SNN, Trace  # noqa: E402,F401
