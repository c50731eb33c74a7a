"""Worlds of rl-cs. ``register()`` makes each known to Ray Tune's registry by name."""


def register() -> None:
    from ray.tune.registry import register_env

    from envs.csc import CSCEnv

    register_env("csc", lambda env_config: CSCEnv(env_config))
