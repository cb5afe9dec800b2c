"""Headless Chromium for the report's page tests: a script expression's value once a page has loaded, the
page's scroll width at a window width, and a page driven over the DevTools protocol (its pipe: no port, no library)
for what a dump of the page cannot show: the accessibility tree, a reload, a URL's fragment.

The probes and the driven pages share one browser in each test process (:func:`fresh_page`: a new tab each), started
at the first and closed at the session's end (``tests/conftest.py``): a Chromium started for each probe took 1-2 s
idle, 5-7 s beside other work, some 40 times in a run. :func:`chromium` still starts one of its own, for what only its
command line does (a dump of the page as written, a screenshot, a PDF, the browser's log)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """A run of Chromium of its own (its profile, and its folder in the temporary folder, removed however it ended:
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                   *args]
        # its own process group, ended whole: a timeout killed only the launcher (a shell script on Debian), and the
        # browser it started went on writing into the profile as it was removed ("Directory not empty: 'Default'")
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as process:
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _end_group(process.pid)
                process.communicate()
                raise
            finally:
                _end_group(process.pid)  # what it left running once it ended
                remove_socket_folder(profile)
        return subprocess.CompletedProcess(command, process.returncode, out, err)


def _end_group(group: int, wait_s: float = 5.0) -> None:
    """Kill the process group ``group`` and wait (at most ``wait_s``) until none of it is left to write."""
    deadline = time.monotonic() + wait_s
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, 9)
        while time.monotonic() < deadline:
            os.killpg(group, 0)  # ProcessLookupError once the group is gone
            time.sleep(0.05)


def remove_socket_folder(profile: str) -> None:
    """Removes the folder Chromium made in the temporary folder for the lock socket of ``profile`` (its
    ``SingletonSocket`` link leads there: ``org.chromium.Chromium.XXXXXX``), once the browser has ended. Chromium
    removes it as it closes; one killed (a crash test, a hang ended, a timeout) left it, dozens of them in a machine's
    temporary folder. Its path cannot be chosen shorter: a socket address holds 107 bytes, and Chromium stops at once
    where the socket's path is longer (in a pytest folder, the profile's own folder was)."""
    try:
        target = os.readlink(os.path.join(profile, "SingletonSocket"))
    except OSError:  # never made (it stopped before), or its profile gone
        return
    folder = os.path.dirname(target)
    if not os.path.isabs(folder) or not os.path.basename(folder).startswith("org.chromium.Chromium.") or \
            os.path.islink(folder):
        return
    # only what Chromium puts there (its socket, and the SingletonCookie link), then the folder if that leaves it
    # empty: a link naming a folder of that name that holds anything else (a user's) removes nothing of it. Where it
    # lies is not asked: Chromium makes it in $TMPDIR, else the system's, whatever folder tempfile was told
    for name, made_by_chromium in (("SingletonSocket", stat.S_ISSOCK), ("SingletonCookie", stat.S_ISLNK)):
        path = os.path.join(folder, name)
        try:
            if made_by_chromium(os.lstat(path).st_mode):
                os.unlink(path)
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:  # not empty (not Chromium's alone), or gone
        pass


def scriptable(page: str) -> str:
    """The page without its Content-Security-Policy, which forbids any script: for a copy a test adds a probe to."""
    return re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)


def probe_page(html: Path, tmp_path: Path, window: int, expression: str, *flags: str) -> str:
    """The value of a JavaScript ``expression`` once ``html`` has loaded in Chromium, in a ``window`` px wide, 2000 px
    high viewport (the page is copied with a script that writes the value into the DOM as the page's load event runs,
    which is then read from the page); ``flags``: ``--hide-scrollbars`` (Chromium's option of that name), no other.
    The viewport is as wide as asked, narrower than 500 px too (``chromium --window-size`` made such a window 500 px
    wide: a probe at 390 px measured 500)."""
    unknown = [flag for flag in flags if flag != "--hide-scrollbars"]
    if unknown:
        raise ValueError(f"probe_page: no such flag {unknown[0]!r} (it takes --hide-scrollbars)")
    probe = tmp_path / "probe.html"
    page = scriptable(html.read_text(encoding="utf-8"))
    if "</body>" not in page:
        raise ValueError(f"probe_page: {html} has no </body> to put the probe before")
    # the expression's error is kept too: without it the reader below waited for a value that never came
    script = (f"<script>window.addEventListener('load',()=>{{let v;try{{v=String({expression});}}catch(e){{"
              f"document.body.setAttribute('data-probe-error',String(e));return;}}"
              f"document.body.setAttribute('data-probe',v);}});</script>")
    probe.write_text(page.replace("</body>", script + "</body>"), encoding="utf-8")
    with fresh_page() as tools:
        tools.send("Emulation.setDeviceMetricsOverride", tools.session, width=window, height=2000,
                   deviceScaleFactor=1, mobile=False)
        if flags:
            tools.send("Emulation.setScrollbarsHidden", tools.session, hidden=True)
        tools.open(probe.as_uri())
        value, error = tools.evaluate("new Promise(done=>{const b=document.body,read=()=>b.hasAttribute('data-probe')"
                                      "||b.hasAttribute('data-probe-error')?done([b.getAttribute('data-probe'),"
                                      "b.getAttribute('data-probe-error')]):setTimeout(read,10);read();})")
    if error is not None:
        raise AssertionError(f"probe_page: {expression!r} failed in {html.name} at {window} px: {error}")
    return value


def page_width(html: Path, tmp_path: Path, window: int) -> int:
    """The page's scroll width in Chromium at a ``window`` px wide window (no wider than it: no sideways scroll)."""
    return int(probe_page(html, tmp_path, window, "document.documentElement.scrollWidth"))


class DevTools:
    """A headless Chromium driven over the DevTools protocol on its pipe (file descriptors 3 and 4, messages
    separated by NUL): one page, opened with :meth:`open`; :meth:`evaluate` runs an expression in it (as the
    DevTools console does: the page's Content-Security-Policy stays in force for the page's own script)."""

    def __init__(self, binary: str | None = None, timeout_s: float = 60):
        """Starts ``binary`` (Chromium on PATH by default); each answer is awaited ``timeout_s`` seconds at most. A
        start that fails ends the browser and removes its profile before raising."""
        self._timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory()
        self._stderr = tempfile.TemporaryFile()  # the browser's own words, quoted when it stops answering
        to_chromium, self._commands = os.pipe()
        self._events, from_chromium = os.pipe()

        def pipes_as_3_and_4():
            ends = os.dup(to_chromium), os.dup(from_chromium)
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        try:
            self._process = subprocess.Popen(
                [binary or CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"],
                pass_fds=(3, 4), preexec_fn=pipes_as_3_and_4, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr)
        except BaseException:
            self._process = None
            self.close()
            raise
        finally:
            os.close(to_chromium)
            os.close(from_chromium)
        self._sent, self._buffer, self._context = 0, b"", None
        try:
            self._target = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")[
                "targetId"]
            self._attach()
        except BaseException:  # a browser left running (and its profile) would outlive the failed test
            self.close()
            raise

    def _attach(self) -> None:
        self._session = self.send("Target.attachToTarget", targetId=self._target, flatten=True)["sessionId"]
        self.send("Page.enable", self._session)

    @property
    def session(self) -> str:
        """The page's session, for a command of :meth:`send` to the page."""
        return self._session

    def alive(self) -> bool:
        """Whether the browser still runs."""
        return self._profile is not None and self._process.poll() is None

    def answers(self, within_s: float = 10) -> bool:
        """Whether the browser answers a command within ``within_s`` seconds: one that runs but answers nothing (a
        whole-browser hang) does not, nor one that has ended."""
        if not self.alive():
            return False
        waited, self._timeout_s = self._timeout_s, within_s
        try:
            self.send("Browser.getVersion")
            return True
        except AssertionError:  # said nothing in time, or closed its pipe
            return False
        finally:
            self._timeout_s = waited

    def end(self) -> None:
        """Ends the browser at once (killed: a hung one never answers Browser.close) and removes what it left."""
        if self._profile is not None and self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.close()

    def new_page(self) -> None:
        """A new tab in place of the page (blank: no history, no emulation, no script state of the page before), in a
        browser context of its own (as a private window: no storage, cookie or cache of the tabs before, which the
        profile's tabs share); the page before and its context are closed."""
        old, old_context = self._target, self._context
        self._context = self.send("Target.createBrowserContext")["browserContextId"]
        self._target = self.send("Target.createTarget", url="about:blank",
                                 browserContextId=self._context)["targetId"]
        self._attach()
        if any(target["targetId"] == old for target in self.send("Target.getTargets")["targetInfos"]):
            self.send("Target.closeTarget", targetId=old)  # a test may have closed it (or its crash did)
        if old_context is not None:
            self.send("Target.disposeBrowserContext", browserContextId=old_context)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        """A command's result (``session``: the page's, else the browser's)."""
        self._sent += 1
        message = {"id": self._sent, "method": method, "params": params} | ({"sessionId": session} if session else {})
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:  # it stopped reading: ended, or ending (its stderr then complete)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise AssertionError(f"chromium closed its DevTools pipe{self._said()}") from None
        while True:
            answer = self._next()
            if answer.get("id") == self._sent:
                assert "error" not in answer, answer
                return answer["result"]

    def _next(self) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._events], [], [], self._timeout_s)[0]:
                raise AssertionError(f"chromium said nothing for {self._timeout_s:g} s{self._said()}")
            chunk = os.read(self._events, 1 << 20)
            if not chunk:
                raise AssertionError(f"chromium closed its DevTools pipe{self._said()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _loaded(self) -> None:
        while True:
            event = self._next()
            if event.get("method") == "Page.loadEventFired" and event.get("sessionId") == self._session:
                return

    def open(self, url: str) -> None:
        """Loads ``url`` (a fragment with it) afresh, as a link opened in a new tab, and waits for its load event
        (from a blank page: a URL that differs from the page's in its fragment alone would only scroll)."""
        for address in ("about:blank", url):
            self.send("Page.navigate", self._session, url=address)
            self._loaded()

    def reload(self) -> None:
        self.send("Page.reload", self._session)
        self._loaded()

    def evaluate(self, expression: str):
        """The value of a JavaScript ``expression`` in the page (JSON-like values as Python's; a promise's once it
        has settled)."""
        result = self.send("Runtime.evaluate", self._session, expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def accessibility_tree(self) -> list[dict]:
        """The page's accessibility tree as Chromium gives it to a screen reader: its nodes, each with its role,
        name and properties (``aria-sort``'s is ``sort``)."""
        return self.send("Accessibility.getFullAXTree", self._session)["nodes"]

    def _said(self) -> str:
        """The end of what the browser wrote on stderr, to quote in a failure."""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        text = self._stderr.read().decode(errors="replace").strip()
        return f"; its stderr: {text}" if text else ""

    def close(self) -> None:
        """Closes the browser (ended if it does not close, or has died) and removes its profile; closing again does
        nothing."""
        if self._profile is None:
            return
        try:
            if self._process is not None and self._process.poll() is None:
                try:
                    self.send("Browser.close")
                except AssertionError:  # the pipe closed with the browser, before the answer or before the command
                    pass
                self._process.wait(timeout=min(20, self._timeout_s))
        except subprocess.TimeoutExpired:  # it did not close: ended below
            pass
        finally:
            if self._process is not None:
                if self._process.poll() is None:
                    self._process.kill()
                    self._process.wait()
            os.close(self._commands)
            os.close(self._events)
            self._stderr.close()
            remove_socket_folder(self._profile.name)
            for _ in range(50):  # a helper still ending may write into the profile as it is removed
                try:
                    self._profile.cleanup()
                    break
                except OSError:
                    time.sleep(0.1)
            self._profile = None

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: DevTools | None = None


# how long the shared browser may take to answer before it is taken for hung, ended and started again
ANSWER_WITHIN_S = 10


@contextlib.contextmanager
def fresh_page():
    """This process's one browser (started at the first call, or again if it has died or hangs) with a new tab: a
    :class:`DevTools` for the ``with`` block, which it leaves running (:func:`close_shared`). A browser that runs but
    does not answer within :data:`ANSWER_WITHIN_S` (a whole-browser hang: each later page test waited 60 s for it and
    failed) is ended and started again, once: a new browser that does not answer either fails the test, saying so."""
    global _shared
    if _shared is not None and not _shared.answers(ANSWER_WITHIN_S):
        _shared.end()
        _shared = None
    if _shared is None:
        _shared = DevTools()
        if not _shared.answers(ANSWER_WITHIN_S):
            _shared.end()
            _shared = None
            raise AssertionError(f"chromium started again did not answer within {ANSWER_WITHIN_S} s")
    _shared.new_page()
    yield _shared


def close_shared() -> None:
    """Closes this process's browser, if one was started (one that does not answer is ended: closing it waited 60 s
    for its answer)."""
    global _shared
    if _shared is not None:
        if _shared.answers(ANSWER_WITHIN_S):
            _shared.close()
        else:
            _shared.end()
        _shared = None
