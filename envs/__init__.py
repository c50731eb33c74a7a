"""Worlds of rl-cs. ``register()`` makes every registered world (rl_cs.worlds) known to Ray Tune by name."""


def register() -> None:
    """Register each world's MultiAgentEnv with Ray Tune under its registry name (``csc``, ``sensing``, ...),
    so RLlib configs can name the env; env classes are imported inside the env creator, on the worker."""
    from ray.tune.registry import register_env

    from rl_cs.registry import worlds

    for world in worlds().values():
        register_env(world.name, _creator(world.env))


def _creator(reference: str):
    def create(env_config):
        from rl_cs.registry import resolve

        return resolve(reference)(env_config)

    return create
