"""aicp verify: one probe per Kubernetes AI Conformance requirement, needing only a kubeconfig."""
