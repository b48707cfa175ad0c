"""ggcloud: a local control plane for rehearsing Greengrass fleet roll-outs (docs/control-plane.md)."""
