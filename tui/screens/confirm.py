"""The dialog every command goes through: what will happen, to what, and what it costs or saves.

Nothing reaches the daemon without an explicit "Confirm"; escape, "n" or "Cancel" send nothing. The
dialog returns a :class:`ConfirmedAction` (or None), and the App sends it: screens never talk to the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static


@dataclass(frozen=True, slots=True)
class TextField:
    """A free-text argument (e.g. a job id), pre-filled with the best guess."""

    name: str
    label: str
    value: str = ""
    placeholder: str = ""


@dataclass(frozen=True, slots=True)
class ChoiceField:
    """An argument picked from a list: ``options`` are (label, value) pairs."""

    name: str
    label: str
    options: tuple[tuple[str, str], ...]
    value: str


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """A command waiting for confirmation: fixed ``args`` plus the ``fields`` the user fills in."""

    kind: str
    title: str
    explanation: str
    args: Mapping[str, Any] = field(default_factory=dict)
    fields: tuple[TextField | ChoiceField, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfirmedAction:
    kind: str
    args: dict[str, Any]


class ConfirmScreen(ModalScreen[ConfirmedAction | None]):
    """Asks before sending. Focus starts on the first field, or on Cancel when there is nothing to fill."""

    BINDINGS = [  # noqa: RUF012 - Textual's declared class attribute
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "No", show=False),
        Binding("y", "confirm", "Yes, send it"),
        Binding("ctrl+s", "confirm", "Confirm", show=False),
    ]

    def __init__(self, request: ActionRequest) -> None:
        super().__init__(classes="dialog-screen")
        self.request = request

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.request.title, id="dialog-title")
            yield Static(self.request.explanation, id="dialog-explanation")
            for item in self.request.fields:
                yield Label(item.label, classes="dialog-label")
                if isinstance(item, TextField):
                    yield Input(value=item.value, placeholder=item.placeholder, id=f"field-{item.name}")
                else:
                    yield Select(item.options, value=item.value, allow_blank=False, id=f"field-{item.name}")
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Confirm", id="confirm", variant="error")
                yield Button("Cancel", id="cancel", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        if self.request.fields:
            self.query_one(f"#field-{self.request.fields[0].name}").focus()
        else:
            self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        args = dict(self.request.args)
        for item in self.request.fields:
            if isinstance(item, TextField):
                value = self.query_one(f"#field-{item.name}", Input).value.strip()
            else:
                selected = self.query_one(f"#field-{item.name}", Select).value
                value = "" if selected is Select.BLANK else str(selected)
            if not value:
                self.query_one("#dialog-error", Static).update(f"✗ {item.label} is required")
                return
            args[item.name] = value
        self.dismiss(ConfirmedAction(self.request.kind, args))
