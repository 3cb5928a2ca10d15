"""A one-line progress bar with an ETA on stderr (redrawn in place on a terminal)."""

import sys
import time


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


class Progress:
    """Counts finished units of work; the ETA assumes the rest cost what the done ones did."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.done, self.width = total, 0, width
        self.stream = sys.stderr if stream is None else stream
        self.start = time.perf_counter()
        self.live = getattr(self.stream, "isatty", lambda: False)()

    def line(self, label: str) -> str:
        elapsed = time.perf_counter() - self.start
        filled = self.width * self.done // max(self.total, 1)
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta_text = "--:--" if eta != eta else _clock(eta)
        bar = "#" * filled + "." * (self.width - filled)
        return (
            f"[{bar}] {self.done}/{self.total} {label}  elapsed {_clock(elapsed)}  ETA {eta_text}"
        )

    def advance(self, label: str) -> None:
        """Marks one unit done and redraws (a new line per unit when not on a terminal)."""
        self.done += 1
        text = self.line(label)
        if self.live:
            self.stream.write("\r\033[K" + text[:160])
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
