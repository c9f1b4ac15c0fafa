"""The studio as a user meets it: `python -m invgan.studio` in its own process, driven by a
headless Chromium through Selenium. The browser test, the latency benchmark and the
screenshots in docs/ share these steps.

Needs Debian's `chromium` and `chromium-driver` (nothing is downloaded at run time) and the
`selenium` package (the `dev` extra); `browser_problem()` says what is missing.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

READY = "studio ready at "
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chromium_paths() -> tuple[str | None, str | None]:
    """The Chromium binary and chromedriver on PATH (None where missing)."""
    binary = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    return binary, shutil.which("chromedriver")


def browser_problem() -> str | None:
    """Why a headless browser cannot run here (None when it can)."""
    binary, driver = chromium_paths()
    if binary is None or driver is None:
        return (
            "no headless browser: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


class StudioProcess:
    """`python -m invgan.studio <overrides>` started from `cwd`; `url` and `startup_seconds`
    (process start to the page answering) once `start()` returns."""

    def __init__(self, overrides: Sequence[str], cwd: Path, env: dict[str, str] | None = None):
        self.overrides = list(overrides)
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.startup_seconds = 0.0
        self.output: list[str] = []

    def start(self, timeout: float = 180.0) -> StudioProcess:
        """Start the studio and wait for its ready line; its output is kept in `output`."""
        start = time.perf_counter()
        process = self.process = subprocess.Popen(
            [sys.executable, "-m", "invgan.studio", *self.overrides],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            for line in process.stdout or ():  # piped above, so never None
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = start + timeout
        while time.perf_counter() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(READY):
                self.url = line[len(READY) :].split()[0]
                self.startup_seconds = time.perf_counter() - start
                return self
        self.stop()
        raise RuntimeError("the studio did not start:\n" + "".join(self.output[-40:]))

    def stop(self) -> None:
        """End the studio process (terminate, then kill after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> StudioProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StudioBrowser:
    """A headless Chromium on a studio page, with the steps a user takes."""

    def __init__(self, width: int = 1400, height: int = 1800, timeout: float = 60.0) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        problem = browser_problem()
        binary, driver = chromium_paths()
        if problem is not None or binary is None or driver is None:
            raise RuntimeError(problem or "Chromium or chromedriver left PATH while starting")
        options = Options()
        options.binary_location = binary
        for argument in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            f"--window-size={width},{height}",
        ):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(service=Service(driver), options=options)
        self.timeout = timeout

    def close(self) -> None:
        """Quit the browser."""
        self.driver.quit()

    # ---------------------------------------------------------------- finding things
    def find(self, css: str) -> Any:
        """The first element matching `css`, waiting for it."""
        from selenium.webdriver.common.by import By

        self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, css), f"element {css}")
        return self.driver.find_elements(By.CSS_SELECTOR, css)[0]

    def wait(self, condition: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Poll `condition` until it is truthy; a timeout names `what` was awaited."""
        deadline = time.perf_counter() + (timeout or self.timeout)
        while time.perf_counter() < deadline:
            try:
                value = condition()
            except Exception:  # the page re-renders under us: try again
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"waited {timeout or self.timeout:.0f} s for {what}")

    def text(self, css: str = "body") -> str:
        """The visible text of an element."""
        return self.find(css).text

    def wait_text(self, css: str, text: str, timeout: float | None = None) -> str:
        """Wait until the element's text contains `text`."""
        return self.wait(
            lambda: text in self.text(css) and self.text(css), f"'{text}' in {css}", timeout
        )

    def image_source(self, elem_id: str) -> str | None:
        """The address of the picture an image component shows (None: none yet)."""
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
        return found[0].get_attribute("src") if found else None

    def picture(self, elem_id: str) -> Image.Image:
        """The picture an image component shows, fetched from the page's server."""
        source = self.wait(lambda: self.image_source(elem_id), f"a picture in #{elem_id}")
        with urllib.request.urlopen(source, timeout=30) as response:
            return Image.open(io.BytesIO(response.read())).convert("RGB")

    # ---------------------------------------------------------------- a user's steps
    def open(self, url: str) -> None:
        """Load the page and wait until its upload box is there."""
        self.driver.get(url)
        self.find("#upload input[type=file]")

    def upload(self, path: Path, elem_id: str = "upload") -> None:
        """Drop a file on an upload box."""
        self.find(f"#{elem_id} input[type=file]").send_keys(str(Path(path).resolve()))

    def choose_methods(self, names: Sequence[str]) -> None:
        """Tick exactly `names` among the methods to compare."""
        from selenium.webdriver.common.by import By

        for label in self.find("#methods").find_elements(By.CSS_SELECTOR, "label"):
            box = label.find_element(By.CSS_SELECTOR, "input[type=checkbox]")
            if box.is_selected() != (label.text.strip() in names):
                label.click()

    def click(self, elem_id: str) -> None:
        """Click a button."""
        element = self.find(f"#{elem_id}")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def move_slider(self, elem_id: str, fraction: float) -> float:
        """Drag a slider to `fraction` of its track (0 left, 1 right) and release it; its
        new value."""
        from selenium.webdriver.common.action_chains import ActionChains

        track = self.find(f"#{elem_id} input[type=range]")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", track)
        offset = int((fraction - 0.5) * track.size["width"])
        ActionChains(self.driver).move_to_element_with_offset(track, offset, 0).click().perform()
        return float(self.find(f"#{elem_id} input[type=number]").get_attribute("value"))

    def open_tab(self, name: str) -> None:
        """Show the tab labelled `name`."""
        from selenium.webdriver.common.by import By

        tabs = self.wait(
            lambda: [
                tab
                for tab in self.driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                if tab.text.strip() == name and tab.is_displayed()
            ],
            f"the tab {name}",
        )
        tabs[0].click()

    def open_accordion(self, title: str) -> None:
        """Unfold the section titled `title`."""
        from selenium.webdriver.common.by import By

        buttons = self.wait(
            lambda: [
                button
                for button in self.driver.find_elements(By.CSS_SELECTOR, "button")
                if button.text.strip().startswith(title) and button.is_displayed()
            ],
            f"the section {title}",
        )
        buttons[0].click()

    def draw(self, elem_id: str, strokes: Sequence[tuple[float, float]]) -> None:
        """Draw one stroke through `strokes`, points as fractions of the editor's shown
        image (0, 0 top left), with the editor's brush."""
        from selenium.webdriver.common.action_chains import ActionChains

        canvas = self.find(f"#{elem_id} canvas")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
        image = self.find(f"#{elem_id} canvas")
        side = min(image.size["width"], image.size["height"])

        def offset(point: tuple[float, float]) -> tuple[int, int]:
            return int((point[0] - 0.5) * side), int((point[1] - 0.5) * side)

        actions = ActionChains(self.driver).move_to_element_with_offset(image, *offset(strokes[0]))
        actions.click_and_hold()
        previous = offset(strokes[0])
        for point in strokes[1:]:
            x, y = offset(point)
            actions.move_by_offset(x - previous[0], y - previous[1])
            previous = (x, y)
        actions.release().perform()

    def wait_new_picture(self, elem_id: str, old: str | None, timeout: float | None = None) -> str:
        """Wait until an image component shows a picture other than `old`; its address."""
        return self.wait(
            lambda: (source := self.image_source(elem_id)) and source != old and source,
            f"a new picture in #{elem_id}",
            timeout,
        )

    def command(self) -> str:
        """The reproducing command the page shows."""
        return self.find("#command textarea").get_attribute("value")

    def screenshot(self, path: Path, elem_id: str | None = None) -> Path:
        """A PNG of the whole window, or of one element (scrolled into view)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if elem_id is None:
            self.driver.save_screenshot(str(path))
        else:
            element = self.find(f"#{elem_id}")
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
            element.screenshot(str(path))
        return path
