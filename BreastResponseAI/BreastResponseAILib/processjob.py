"""A prepared prediction job run in a ``QProcess``: progress lines in, one callback at the end.

Shared by both ResponseAI module widgets (GUI only: this file imports Qt and is never imported
by the Logic, which stays testable without the Slicer application). The models run in the
child process, so Slicer's GUI stays responsive and Cancel kills the work.
"""

import qt


class ProcessJob:
    """Start ``job.command`` with ``job.env``; call ``onProgress(percent, message)`` per PROGRESS
    line and ``onFinished(succeeded, logLines)`` once, after success, failure or Cancel."""

    def __init__(self, job, parseProgress, onProgress, onFinished) -> None:
        self.job = job
        self.log = []
        self._parseProgress = parseProgress
        self._onProgress = onProgress
        self._onFinished = onFinished
        self._process = qt.QProcess()
        environment = qt.QProcessEnvironment()
        for key, value in job.env.items():
            environment.insert(key, value)
        self._process.setProcessEnvironment(environment)
        self._process.setProcessChannelMode(qt.QProcess.MergedChannels)
        self._process.connect("readyRead()", self._readOutput)
        # the two-argument signal exists in Qt 5 and Qt 6 (the one-argument one is gone in Qt 6)
        self._process.connect("finished(int,QProcess::ExitStatus)", self._finished)

    @property
    def running(self) -> bool:
        return self._process.state() != qt.QProcess.NotRunning

    def start(self) -> None:
        self._process.start(self.job.command[0], self.job.command[1:])

    def cancel(self) -> None:
        """Kill the child; ``onFinished`` then reports failure (nothing was added to the scene)."""
        if self.running:
            self._process.kill()
            self._process.waitForFinished(3000)

    def _readOutput(self) -> None:
        text = self._process.readAll().data().decode("utf-8", "replace")
        for line in text.splitlines():
            self.log.append(line)
            percent, message = self._parseProgress(line)
            if percent is not None:
                self._onProgress(percent, message)

    def _finished(self, exitCode, exitStatus) -> None:
        self._readOutput()
        succeeded = exitCode == 0 and exitStatus == qt.QProcess.NormalExit
        self._onFinished(succeeded, self.log)
