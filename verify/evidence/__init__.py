"""Evidence a reviewer can trust: the CNCF validator's rules checked before a submission is
written (``cncf``), and a signed digest manifest over every file (``sign``), verified by
``aicp verify evidence check DIR``."""
