"""The endpoint screen's what-if: would other settings have served the last week's requests for less?

Why here: ``runpod-watchdog whatif`` answers it on the command line, but the person deciding an endpoint's
idle timeout or GPU is looking at that endpoint's screen. The figures are the command's own
(:func:`watchdog.reports.whatif.whatif_options`, computed by :meth:`tui.source.StatusSource.whatif` in a
worker thread); this module only draws them, in euros.

Drawn for 80 columns, the answer first: what today's settings cost, the cheapest combination that fits the
monthly budget within today's p95 wait (in sentences that wrap between values, never inside one), then one
table of options (today's settings, a few idle timeouts, 0/1 active workers, each GPU type of the price
table) with € per month, the difference with today and the p50/p95 added wait. Too few recorded requests:
one line saying so, never a table of zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tui.source import WhatIfView
from tui.widgets.state import Prose, count, eur
from watchdog.reports.whatif import Option, Options, Outcome

IDLE_SHOWN_S: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
"""The idle timeouts drawn (with today's); the search for the cheapest still tries all of the command's
(:data:`watchdog.reports.whatif.IDLE_TIMEOUTS_S`)."""


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


def whatif_heading(view: WhatIfView | None, *, busy: bool = False) -> str:
    days = f"{view.days:g}" if view is not None else "7"
    heading = f"What-if: the last {days} days replayed with other settings (w: recompute)"
    return heading + ("  (computing…)" if busy or view is None else "")


def _gpu_short(options: Options) -> str:
    return options.inputs.gpu.gpu_type_id.removeprefix("NVIDIA ").removeprefix("GeForce ")


def whatif_intro(options: Options, view: WhatIfView) -> Text:
    """What was replayed, and what today's settings cost in the replay (and in the ledger)."""
    inputs = options.inputs
    rate = view.usd_per_eur
    text = Text(
        f"{count(len(inputs.arrivals))} requests of {inputs.days:.1f} days replayed. Today's settings "
        f"(idle timeout {inputs.idle_timeout_s:g} s, {inputs.workers_min} active, {_gpu_short(options)}, "
        f"cold start {inputs.cold_start_s:.1f} s): "
    )
    text.append(f"{eur(options.base.usd_month / rate)} per month", style="bold")
    text.append(f" (the ledger counted {eur(inputs.per_month(inputs.recorded_usd) / rate)}).")
    return text


def whatif_notes(view: WhatIfView) -> Text:
    """How to read the table, and where the rest of the command's options are."""
    return Text(
        "Wait = time from sending a request to the start of its execution, plus any slower execution on "
        "another GPU (negative: faster); GPU speeds are assumed from memory bandwidth. Cold start, "
        f"batching, other limits: runpod-watchdog whatif {view.endpoint_id} --days {view.days:g}",
        style="bright_black",
    )


def _row(table: Table, label: str, outcome: Outcome, base: Outcome, rate: float, *, style: str = "") -> None:
    delta = (outcome.usd_month - base.usd_month) / rate
    table.add_row(
        label,
        eur(outcome.usd_month / rate),
        "—" if outcome is base else f"{delta:+,.2f} €",
        seconds(outcome.wait_p50_s),
        seconds(outcome.wait_p95_s) + (" ✗" if outcome.unserved else ""),
        style=style,
    )


def _group(table: Table, title: str, rows: Sequence[Option], base: Outcome, rate: float) -> None:
    table.add_row(Text(title, style="bold"))
    for option in rows:
        note = f" ({option.note})" if option.note else ""
        style = "italic" if option.note else ""
        _row(table, f"  {option.label}{note}", option.outcome, base, rate, style=style)


def whatif_table(options: Options, rate: float) -> Table:
    """Today's settings, then each setting changed alone: € per month, vs today, p50/p95 added wait."""
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1), expand=False)
    table.add_column("Option", no_wrap=True)
    for heading in ("€ / month", "vs today", "wait p50", "wait p95"):
        table.add_column(heading, justify="right", no_wrap=True)
    base = options.base
    _row(table, "Today's settings", base, base, rate, style="bold")
    idle = [o for o in options.idle if o.note or o.outcome.candidate.idle_timeout_s in IDLE_SHOWN_S]
    _group(table, "Idle timeout", idle, base, rate)
    _group(table, "Active workers (always on)", options.workers, base, rate)
    _group(table, "GPU type × execution time", options.gpus, base, rate)
    return table


def cheapest_words(options: Options, view: WhatIfView) -> Text:
    """The cheapest combination within the budget and the wait limit, what it changes, and the month."""
    rate = view.usd_per_eur
    limit = f"{options.max_wait_s:.1f} s" + ("" if options.max_wait_given else " (today's)")
    left = eur(options.budget_usd_month / rate)
    text = Text("Cheapest combination ", style="bold")
    text.append(f"within the budget ({left} a month left for this endpoint) and a p95 wait ≤ {limit}: ")
    found = options.found
    if found is None:
        text.append("none keeps the p95 wait that low.", style="yellow")
        return text
    if options.search.best is None:
        text.append(f"none fits {left} a month; the cheapest within the wait: ", style="yellow")
    delta = (found.usd_month - options.base.usd_month) / rate
    text.append(f"{eur(found.usd_month / rate)} per month", style="bold")
    text.append(
        f" ({delta:+,.2f} € vs today), wait p50 {seconds(found.wait_p50_s)}, p95 {seconds(found.wait_p95_s)}."
    )
    changes = options.changes() or ["nothing: today's settings are the cheapest"]
    text.append("\nChanges: " + "; ".join(changes).replace("× ", "×") + ".")  # "×1.71" stays whole
    month = (found.usd_month + options.fixed_usd + options.others_usd_month) / rate
    text.append(f"\nWith the fixed costs and the other endpoints: {eur(month)} a month")
    text.append(f" against {eur(view.monthly_eur)}.")
    return text


def whatif_renderable(view: WhatIfView) -> RenderableType:
    """The whole section: the options and the cheapest fit, or one line saying why there are none."""
    if view.options is None:
        return Text(f"No what-if: {view.problem or 'nothing recorded'}.", style="italic")
    options = view.options
    return Group(
        Prose(whatif_intro(options, view)),
        Prose(cheapest_words(options, view)),
        Text(""),
        whatif_table(options, view.usd_per_eur),
        Text(""),
        Prose(whatif_notes(view)),
    )
