"""WorldGym scenes: pymunk physics rendered to RGB frames, as Gymnasium environments.

``import envs`` registers ``WorldGym/<Name>-v0`` for every scene below; ``envs.SCENE_IDS`` lists them
and ``envs.KINDS`` names the object kinds of ``info["state"]["kind"]``.

    >>> import gymnasium as gym, envs
    >>> env = gym.make("WorldGym/BouncingBalls-v0", render_mode="rgb_array", width=64, height=64)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (64, 64, 3)
"""
import gymnasium as gym

from envs.kinds import KIND_INDEX, KINDS

# name → (module:class, max_episode_steps). Bump -vN when dynamics or rendering change.
_SCENES = {
    "BouncingBalls": ("envs.bouncing_balls:BouncingBalls", 1000),
    "Platformer": ("envs.platformer:Platformer", 1000),
    "TopDown": ("envs.top_down:TopDown", 1000),
    "FallingLeaves": ("envs.falling_leaves:FallingLeaves", 1000),
    "ParticleSystems": ("envs.particle_systems:ParticleSystems", 1000),
    "GrowingStructures": ("envs.growing_structures:GrowingStructures", 1000),
    "SpinningObjects": ("envs.spinning_objects:SpinningObjects", 1000),
    "MorphingShapes": ("envs.morphing_shapes:MorphingShapes", 1000),
}

SCENE_IDS: list[str] = []
for _name, (_entry, _max_steps) in _SCENES.items():
    _id = f"WorldGym/{_name}-v0"
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=_max_steps)
    SCENE_IDS.append(_id)

# A world model's dream of a scene (worldmodel/dream_env.py; torch is imported only by gym.make).
# gym.make_vec batches the dreams through one model call (worldmodel/dream_vector.py) by default.
if "WorldGym/Dream-v0" not in gym.registry:
    gym.register(id="WorldGym/Dream-v0", entry_point="worldmodel.dream_env:DreamEnv",
                 vector_entry_point="worldmodel.dream_vector:DreamVectorEnv")

__all__ = ["SCENE_IDS", "KINDS", "KIND_INDEX"]
