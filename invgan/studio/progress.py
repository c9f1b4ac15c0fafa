"""Progress and cancellation of optimisation-based inversion while the studio waits for it.

Every optimisation method (`optimization`, `hybrid`, `domain_regularized`, `mganprior`,
`pmsfc`) steps a torch optimizer, so one optimizer post-step hook sees all of them without
changing their code. The hook is global to the process; it acts only in the thread (context)
where `watch_steps` is active, so training or another request in another thread is untouched.
A cancelled request raises `InversionCancelled` from inside the optimisation loop, which ends
it at the next step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


class InversionCancelled(RuntimeError):
    """The user cancelled an inversion while it was running."""


@dataclass
class StepWatch:
    """What one request's optimisation reports to: `report(done, total)` after each step
    (total None when unknown), and a cancel flag checked before reporting."""

    report: Callable[[int, int | None], None]
    total: int | None
    cancel: threading.Event
    done: int = 0


_WATCH: ContextVar[StepWatch | None] = ContextVar("invgan_studio_step_watch", default=None)
_HOOK_LOCK = threading.Lock()
_hook_handle: Any = None


def _after_optimizer_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """The global post-step hook: count the step, stop when cancelled, else report."""
    watch = _WATCH.get()
    if watch is None:
        return
    watch.done += 1
    if watch.cancel.is_set():
        raise InversionCancelled(f"inversion cancelled after {watch.done} optimisation steps")
    watch.report(watch.done, watch.total)


def _install_hook() -> None:
    """Register the post-step hook once per process."""
    global _hook_handle
    with _HOOK_LOCK:
        if _hook_handle is None:
            _hook_handle = register_optimizer_step_post_hook(_after_optimizer_step)


def expected_steps(method: object) -> int | None:
    """Optimizer steps a method takes per batch (steps x restarts), None for one-pass
    methods (the model's encoder) and methods that do not say."""
    steps = getattr(method, "steps", None)
    if not isinstance(steps, int):
        return None
    restarts = getattr(method, "restarts", 1)
    return steps * (restarts if isinstance(restarts, int) else 1)


@contextmanager
def watch_steps(
    report: Callable[[int, int | None], None],
    cancel: threading.Event,
    total: int | None = None,
) -> Iterator[StepWatch]:
    """Within the block, every optimizer step of this thread calls `report(done, total)`,
    and raises `InversionCancelled` once `cancel` is set. A cancel flag set before the block
    cancels at the first step."""
    _install_hook()
    watch = StepWatch(report, total, cancel)
    token = _WATCH.set(watch)
    try:
        yield watch
    finally:
        _WATCH.reset(token)


class CancelFlags:
    """The cancel flags of each browser session's running requests: Cancel sets every flag
    of its session; a request that starts later gets a fresh one, so a cancel never
    outlives what it was meant for and a new request never clears an earlier cancel."""

    def __init__(self) -> None:
        # Keyed by Gradio's session hash, None for requests without a session (API calls).
        self._running: dict[str | None, set[threading.Event]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def running(self, session: str | None) -> Iterator[threading.Event]:
        """A flag for one request of `session`, registered while the block runs."""
        flag = threading.Event()
        with self._lock:
            self._running.setdefault(session, set()).add(flag)
        try:
            yield flag
        finally:
            with self._lock:
                flags = self._running.get(session, set())
                flags.discard(flag)
                if not flags:
                    self._running.pop(session, None)

    def cancel(self, session: str | None) -> int:
        """Cancel the session's running requests; how many there were."""
        with self._lock:
            flags = list(self._running.get(session, ()))
        for flag in flags:
            flag.set()
        return len(flags)
