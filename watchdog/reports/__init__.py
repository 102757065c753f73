"""Money you can show funders: reports, comparisons and what-ifs computed from the ledger's own records.

RunPod's API cannot list past requests, so everything here works from what the daemon recorded (jobs,
worker sessions, traffic counts, hourly spend: RunPod's bill where it exists, the live estimate for the
hours not billed yet) and from the configuration (budget, prices). The modules:

- :mod:`~watchdog.reports.source`: the read-only queries (a :class:`~watchdog.ledger.LedgerReader` that
  also reads the BI views of ledger migration 0004);
- :mod:`~watchdog.reports.month`: one month's figures for a treasurer (:func:`month_figures`), and
  :mod:`~watchdog.reports.render` / :mod:`~watchdog.reports.chart` turn them into Markdown, HTML, CSV and a
  chart (the chart needs the ``report`` extra: matplotlib);
- :mod:`~watchdog.reports.providers`: the seed's provider table recomputed (``runpod-watchdog compare``);
- :mod:`~watchdog.reports.replay`: a pure discrete-event model of a serverless endpoint, and
  :mod:`~watchdog.reports.whatif`: candidate settings replayed against recorded arrivals;
- :mod:`~watchdog.reports.checklist`: the seed's pre-launch checklist, automated where it can be.

Boundaries: reads the ledger (never writes it), never calls RunPod except the checklist's optional live
read through :class:`~watchdog.client.RunPodClient`, never imports the simulator (an import-linter
contract), and imports matplotlib only inside :mod:`~watchdog.reports.chart`, lazily.
"""
