"""aicp's platform checks: what an AI platform needs beyond the CNCF checklist.

The contract (the same as a requirement probe's, ``verify/probe.py``):

- one module per check, ``verify/checks/<id>.py``, defining exactly one ``Probe`` subclass
  whose ``id`` equals the module name (``registry.discover(registry.CHECKS_PACKAGE)``);
  ``category`` (default ``platform``), ``title`` (the one line reports show), ``needs``,
  ``mutating``, ``long``, ``exclusive`` and ``timeouts`` mean what they mean for a probe;
- ``cases(ctx)`` returns the PASS reason or stops by raising ``Fail``, ``Skip`` or
  ``ProbeError``; the runner gives it its budget, timeouts, cleanup and evidence as for any
  probe, after every requirement probe has started;
- its outcome is reported apart: "aicp platform checks" in the terminal, ``platformChecks``
  in results.json, ``evidence/platform/<id>/`` in the bundle; never in the checklist, its
  JUnit or e2e.log, nor in ``conformant``. A FAIL or ERROR changes the exit code only with
  ``--strict-platform`` (``verdicts.exit_code``). ``--only``/``--skip`` take check ids too;
  ``--read-only`` leaves mutating checks out.
"""
