"""A prepared prediction job run in a ``QProcess``: progress lines in, one callback at the end.

Shared by both ResponseAI module widgets (GUI only: this file imports Qt and is never imported
by the Logic, which stays testable without the Slicer application). The models run in the
child process, so Slicer's GUI stays responsive and Cancel kills the work.

Two QProcess facts shape this class: a process that cannot start emits ``errorOccurred``
(FailedToStart) and never ``finished``, so both end the job; and ``PythonSlicer`` is a launcher
whose child is the real Python, so Cancel kills the whole process tree, not just the launcher.
"""

import qt


class ProcessJob:
    """Start ``job.command`` with ``job.env``; call ``onProgress(percent, message)`` per PROGRESS
    line and ``onFinished(succeeded, logLines)`` exactly once, after success, failure, a failed
    start or Cancel."""

    def __init__(self, job, parseProgress, onProgress, onFinished) -> None:
        self.job = job
        self.log = []
        self._parseProgress = parseProgress
        self._onProgress = onProgress
        self._onFinished = onFinished
        self._reported = False
        self._process = qt.QProcess()
        environment = qt.QProcessEnvironment()
        for key, value in job.env.items():
            environment.insert(key, value)
        self._process.setProcessEnvironment(environment)
        self._process.setProcessChannelMode(qt.QProcess.MergedChannels)
        self._process.connect("readyRead()", self._readOutput)
        # the two-argument signal exists in Qt 5 and Qt 6 (the one-argument one is gone in Qt 6)
        self._process.connect("finished(int,QProcess::ExitStatus)", self._finished)
        self._process.connect("errorOccurred(QProcess::ProcessError)", self._errorOccurred)

    @property
    def running(self) -> bool:
        return self._process.state() != qt.QProcess.NotRunning

    def start(self) -> None:
        self._process.start(self.job.command[0], self.job.command[1:])

    def cancel(self) -> None:
        """Kill the job's whole process tree; ``onFinished`` then reports failure (nothing was added)."""
        from responseai.slicer_bridge.jobs import kill_process_tree

        if self.running:
            kill_process_tree(int(self._process.processId()))
            self._process.waitForFinished(3000)

    def _readOutput(self) -> None:
        text = self._process.readAll().data().decode("utf-8", "replace")
        for line in text.splitlines():
            self.log.append(line)
            percent, message = self._parseProgress(line)
            if percent is not None:
                self._onProgress(percent, message)

    def _report(self, succeeded: bool) -> None:
        if not self._reported:
            self._reported = True
            self._onFinished(succeeded, self.log)

    def _errorOccurred(self, error) -> None:
        """Only a failed start ends the job here; crashes and kills also emit ``finished``."""
        if error == qt.QProcess.FailedToStart:
            # the same shape as the core's log lines, so error_from_log picks this message
            self.log.append(f"- ERROR ResponseAICommon: the job could not start {self.job.command[0]} "
                            f"({self._process.errorString()})")
            self._report(False)

    def _finished(self, exitCode, exitStatus) -> None:
        self._readOutput()
        self._report(exitCode == 0 and exitStatus == qt.QProcess.NormalExit)
