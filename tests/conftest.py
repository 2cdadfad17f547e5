"""Root fixtures. Worlds are built per area: tests/addons, tests/components, tests/verify.

The Kubernetes API emulator's fixtures (``kubeapi``, ``kube_client``, ``kubeconfig``,
``kubeapi_factory``) are available to every test.
"""

pytest_plugins = ["tests.kubeapi.fixtures"]
