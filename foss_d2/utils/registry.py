"""Looking a name up in one of FOSS's registries, with an error that names the config key."""

from detectron2.utils.registry import Registry


def lookup(registry: Registry, name: str, key: str, what: str):
    """``registry.get(name)``, or a KeyError naming ``key`` and the registered names."""
    if name not in registry:
        known = ", ".join(sorted(n for n, _ in registry))
        raise KeyError(f"{key}={name!r} is not a registered {what} (known: {known})")
    return registry.get(name)
