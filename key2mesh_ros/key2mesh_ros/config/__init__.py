"""The node's configuration files (package data: read through key2mesh.paths.node_config)."""
