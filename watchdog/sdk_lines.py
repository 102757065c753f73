"""The runpod SDK's per-job log lines, read from a worker's log stream: which job started or finished when.

Why: a hung job must be cancelled by id at its deadline, without any log file configured on the team's
side. RunPod streams each serverless worker's container log (REST v2
``GET /v2/serverless/{id}/workers/{workerId}/logs``), and the SDK prints one line when a job starts and one
when it finishes (``rp_job.py``, runpod-api.md §9): on RunPod (``RUNPOD_ENDPOINT_ID`` set) as JSON,
``{"requestId": "<job id>", "message": "Started.", "level": "INFO"}``, elsewhere as text,
``INFO   | <job id> | Started.``. The stream's own timestamp of that line is the job's start, to the second.

What it trusts: nothing on the line but its shape. The handler's own output shares the stream, so a line
that looks like the SDK's is only a claim: its job id must be an id RunPod could have made, and the daemon
acts on the job only once RunPod's ``/status`` confirms it in progress (watchdog.daemon.tracker).

Pure functions; no I/O. This module may not import the daemon, the client or anything with state.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import NamedTuple

from watchdog.models import is_runpod_id

MAX_SDK_LINE_CHARS = 600
"""Longer lines are not the SDK's job lines (those are under 200 characters); they are not parsed."""


class JobMark(StrEnum):
    STARTED = "Started."
    FINISHED = "Finished."


class JobLine(NamedTuple):
    job_id: str
    mark: JobMark


def parse_job_line(line: str) -> JobLine | None:
    """The job and what happened to it, if ``line`` is the SDK's "Started." or "Finished." line; else None.

    >>> parse_job_line('{"requestId": "abc-1", "message": "Started.", "level": "INFO"}')
    JobLine(job_id='abc-1', mark=<JobMark.STARTED: 'Started.'>)
    >>> parse_job_line("INFO   | abc-1 | Finished.")
    JobLine(job_id='abc-1', mark=<JobMark.FINISHED: 'Finished.'>)
    >>> parse_job_line("Started. my own print") is None
    True
    """
    text = line.strip()
    if not text or len(text) > MAX_SDK_LINE_CHARS:
        return None
    if text.startswith("{"):
        return _json_line(text)
    return _text_line(text)


def _json_line(text: str) -> JobLine | None:
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    return _job_line(record.get("requestId"), record.get("message"))


def _text_line(text: str) -> JobLine | None:
    parts = [part.strip() for part in text.split("|")]
    if len(parts) != 3:
        return None
    return _job_line(parts[1], parts[2])


def _job_line(job_id: object, message: object) -> JobLine | None:
    if not is_runpod_id(job_id) or not isinstance(message, str):
        return None
    try:
        mark = JobMark(message.strip())
    except ValueError:
        return None
    assert isinstance(job_id, str)
    return JobLine(job_id, mark)
