"""A faithful model of a RunPod account, for tests, the demo and benchmarks.

Two layers, one contract:

* ``engine.Simulator`` is the model: endpoints, an autoscaler, workers and their billed sessions, jobs, the
  health counters, billing buckets, scenario traffic, and an access log. It is driven by a ``Clock`` and is
  a discrete-event simulation: ``sync()`` advances the model to ``clock.now()`` processing every due event
  in order, so a ``ManualClock`` can jump a whole month and get the same result as living it.
* ``app.create_app(sim)`` is the HTTP face: one ASGI app that routes GraphQL, REST v2, the job runtime and
  the worker-side protocol like RunPod's hosts do (runpod-api.md §1.1), with each API's own errors, auth,
  rate limits and injectable faults. ``serve.py`` runs it under uvicorn for ``runpod-watchdog simulate``
  (real runpod SDK workers can serve its endpoints: ``--external-workers`` prints their environment);
  ``webhooks.py`` delivers job webhooks, to loopback addresses only.

The simulator is the ground truth the product is checked against; the official runpod SDK checks the
simulator (tests/test_sdk_oracle.py).

It lives outside the product's import package and ships as the ``sim`` extra
(``pip install 'runpod-watchdog[sim]'``), so a production install carries no web server or GraphQL stack.
It may import only the clock and the price table from the product (``watchdog.clock``,
``watchdog.prices``: the simulator bills with the same table the daemon estimates with); an
import-linter contract in ``pyproject.toml`` checks it.
"""
