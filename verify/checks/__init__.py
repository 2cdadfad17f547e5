"""Platform checks beyond the CNCF checklist: one ``Probe`` subclass per module
``verify/checks/<id>.py``, run by the same runner, reported in their own section."""
