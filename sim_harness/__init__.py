"""The wiring of the product with its RunPod simulator, outside the product's import package.

The demo (:mod:`sim_harness.demo`), the benchmarks and the tests drive the real daemon against the
simulator through :mod:`sim_harness.wiring`, so they all run the same thing. This package may import
anything (``watchdog``, ``runpod_sim``, ``tui``); nothing in ``watchdog`` or ``runpod_sim`` may import it.
It ships with the ``sim`` extra (``pip install 'runpod-watchdog[sim]'``).
"""
