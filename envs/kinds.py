"""Object kinds reported in ``info["state"]["kind"]``: the integer is the index into ``KINDS``.

One table for all scenes so that a kind means the same thing in every dataset. Append only:
renumbering would silently change recorded datasets.
"""
KINDS: tuple[str, ...] = (
    "ball",          # 0  BouncingBalls, SpinningObjects: a free rigid ball
    "paddle",        # 1  BouncingBalls: the agent's paddle
    "character",     # 2  Platformer: the agent
    "platform",      # 3  Platformer: a moving platform
    "coin",          # 4  Platformer: a collectable
    "box",           # 5  TopDown: a pushable box
    "agent",         # 6  TopDown: the agent's puck
    "leaf",          # 7  FallingLeaves: a leaf
    "basket",        # 8  FallingLeaves: the agent's basket
    "particle",      # 9  ParticleSystems: one particle
    "emitter",       # 10 ParticleSystems: the agent's emitter
    "block",         # 11 GrowingStructures: a stacked block
    "crane",         # 12 GrowingStructures: the agent's crane hook
    "rotor",         # 13 SpinningObjects: a wheel, bar or gear on a pivot
    "soft_node",     # 14 MorphingShapes: one outline particle of a soft body
    "soft_center",   # 15 MorphingShapes: the soft body's centre
    "obstacle",      # 16 any scene: a moving obstacle
    "cup",           # 17 SpinningObjects: the target cup (if it moves)
)
KIND_INDEX: dict[str, int] = {name: i for i, name in enumerate(KINDS)}
