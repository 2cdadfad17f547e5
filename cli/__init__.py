"""aicp: stand up AI-ready Kubernetes platforms and prove they are conformant."""
