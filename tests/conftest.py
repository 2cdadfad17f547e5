"""Root fixtures. Worlds are built per area: tests/addons, tests/components, tests/verify."""
