"""World model unit tests: configs, tokenizer, dynamics (masking, memory, generation), checkpoints.

All models here are micro versions of the presets (same code path, smaller sizes) so the file runs in
seconds on 2 CPU cores. Training-loop tests (CLI, resume, DDP) are in test_worldmodel_train.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldmodel import checkpoint as ckpt
from worldmodel.config import DynamicsConfig, TokenizerConfig, WorldModelConfig, preset
from worldmodel.dynamics import Dynamics
from worldmodel.model import WorldModel
from worldmodel.tokenizer import Tokenizer, foreground_mask, to_uint8

torch.set_num_threads(1)  # 2 OpenMP threads spin badly when the other core is busy


def micro_cfg(action_space=None, context=3, **dyn) -> WorldModelConfig:
    kw = dict(d_model=32, n_layers=2, n_heads=2, token_dim=16, context=context, train_frames=5,
              memory_slots=4, maskgit_steps=3)
    kw.update(dyn)
    return WorldModelConfig(
        tokenizer=TokenizerConfig(height=32, width=32, channels=(8, 16, 16), codebook_size=64, code_dim=16,
                                  restart_every=5),
        dynamics=DynamicsConfig(**kw),
        action_space=action_space or {"type": "discrete", "n": 3}).sync()


def balls(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Flat-coloured frames: dark background, 1-3 discs of distinct colours. (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 3), np.uint8)
    out[:] = (20, 22, 30)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(2, 5)
            out[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(60, 255, 3)
    return torch.from_numpy(out)


def random_tokens(B, T, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.tokenizer.grid
    return torch.randint(0, cfg.tokenizer.codebook_size, (B, T, h, w), generator=g)


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize("name", ["tiny", "small", "base", "seed163m"])
def test_config_json_round_trip(name):
    cfg = preset(name, {"type": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}, "X-v0")
    again = WorldModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert isinstance(again.tokenizer.channels, tuple) and isinstance(again.dynamics.grid, tuple)


def test_checkpoint_activations_flags_round_trip_and_parse_from_set():
    from worldmodel.train import apply_overrides

    cfg = micro_cfg()
    assert not cfg.tokenizer.checkpoint_activations and not cfg.dynamics.checkpoint_activations
    on = apply_overrides(cfg, ["dynamics.checkpoint_activations=true",
                               "tokenizer.checkpoint_activations=True"])
    assert on.dynamics.checkpoint_activations is True and on.tokenizer.checkpoint_activations is True
    again = WorldModelConfig.from_json(on.to_json())
    assert again == on and again.dynamics.checkpoint_activations is True
    off = apply_overrides(on, ["dynamics.checkpoint_activations=False", "tokenizer.checkpoint_activations=0"])
    assert off.dynamics.checkpoint_activations is False and off.tokenizer.checkpoint_activations is False
    with pytest.raises(ValueError, match="checkpoint_activations"):
        apply_overrides(cfg, ["dynamics.checkpoint_activations=maybe"])
    for name in ("tiny", "small", "base", "seed163m"):  # on where it was measured to help (config.py)
        p = preset(name)
        assert p.dynamics.checkpoint_activations == p.tokenizer.checkpoint_activations == (name == "seed163m")


def test_maskgit_schedule_is_a_config_setting_older_configs_default_to_cosine(tmp_path):
    from worldmodel.train import apply_overrides

    cfg = apply_overrides(micro_cfg(), ["dynamics.maskgit_schedule=adaptive",
                                        "dynamics.maskgit_confidence=0.8"])
    assert WorldModelConfig.from_json(cfg.to_json()) == cfg
    assert WorldModel(cfg).dynamics.check_schedule() == "adaptive"
    d = micro_cfg().to_dict()
    del d["dynamics"]["maskgit_schedule"], d["dynamics"]["maskgit_confidence"]  # a checkpoint from before
    assert WorldModelConfig.from_dict(d).dynamics.maskgit_schedule == "cosine"
    for bad, message in [("maskgit_schedule=linear", "schedule must be one of"),
                         ("maskgit_confidence=0", "maskgit_confidence")]:
        with pytest.raises(ValueError, match=message):
            WorldModel(apply_overrides(micro_cfg(), [f"dynamics.{bad}"]))


def test_config_rejects_unknown_keys():
    d = preset("tiny").to_dict()
    d["dynamics"]["nonsense"] = 1
    with pytest.raises(ValueError, match="nonsense"):
        WorldModelConfig.from_dict(d)


def test_seed163m_parameter_count():
    with torch.device("meta"):
        counts = WorldModel(preset("seed163m")).num_parameters()
    assert abs(counts["total"] - 163e6) / 163e6 < 0.02
    assert abs(counts["dynamics"] - 138e6) / 138e6 < 0.02
    assert abs(counts["tokenizer"] - 25e6) / 25e6 < 0.05
    assert preset("seed163m").dynamics.n_layers == 8
    assert preset("seed163m").tokenizer.height == 256 and preset("seed163m").dynamics.train_frames == 32


# ---------------------------------------------------------------------- tokenizer
def test_tokenizer_shapes_and_decode_encode_consistency():
    torch.manual_seed(0)
    cfg = micro_cfg().tokenizer
    tok = Tokenizer(cfg)
    x = balls(6)
    tok.train()
    tok.compute_loss(x)  # data-dependent codebook init
    tok.eval()
    idx = tok.encode(x)
    assert idx.shape == (6, 8, 8) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < cfg.codebook_size
    out = tok.decode(idx)
    assert out.shape == (6, 32, 32, 3) and out.dtype == torch.uint8
    # decode(encode(x)) is exactly the model's reconstruction, and batching does not change the codes.
    # Decoded pixels may move by one grey level: the convolution kernels oneDNN picks for 1 and 6 frames
    # round differently, and a value at .5 then rounds the other way (seen on AVX2-only hosts).
    with torch.no_grad():
        assert torch.equal(out, to_uint8(tok(x).recon))
    assert torch.equal(tok.encode(x[:2]), idx[:2])
    alone = torch.cat([tok.decode(idx[i:i + 1]) for i in range(6)])
    diff = (alone.int() - out.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3


def test_patch_encoder_codes_are_local():
    """Moving an object changes only the codes of the patches it touches (no "boiling" background)."""
    torch.manual_seed(0)
    tok = Tokenizer(micro_cfg().tokenizer).train()
    tok.compute_loss(balls(8))  # codebook init
    x = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    x[:] = torch.tensor([20, 22, 30], dtype=torch.uint8)
    x[0, 4:8, 4:8] = 200  # an object inside patch (1, 1)
    x[1, 12:16, 20:24] = 200  # moved to patch (3, 5)
    idx = tok.eval().encode(x)
    changed = (idx[0] != idx[1]).nonzero().tolist()
    assert changed and all(tuple(c) in {(1, 1), (3, 5)} for c in changed)


def test_two_level_tokenizer_codes_2x2_pixel_patches():
    """Two decoder levels (``tokenizer.channels=[32,64]``, as for ParticleSystems) make a token of 2×2
    pixels: a 32×32 frame is 16×16 codes, round-trips at that size, and a 1-px particle re-codes only
    the one patch it is in."""
    torch.manual_seed(0)
    cfg = micro_cfg().tokenizer
    cfg.channels = (8, 16)
    tok = Tokenizer(cfg).train()
    assert cfg.downsample == 2 and cfg.grid == (16, 16)
    tok.compute_loss(balls(8))  # codebook init
    x = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    x[:] = torch.tensor([20, 22, 30], dtype=torch.uint8)
    x[1, 7, 9] = 250  # one particle pixel, inside patch (3, 4)
    idx = tok.eval().encode(x)
    assert idx.shape == (2, 16, 16)
    assert tok.decode(idx).shape == (2, 32, 32, 3)
    assert (idx[0] != idx[1]).nonzero().tolist() == [[3, 4]]


def test_tokenizer_learns_flat_frames():
    """A micro tokenizer overfits a few flat-coloured frames (PSNR rises well above the start)."""
    torch.manual_seed(0)
    tok = Tokenizer(micro_cfg().tokenizer)
    x = balls(8, seed=1)
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        out = tok.compute_loss(x)
        first = first if first is not None else float(out.psnr)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    assert float(out.psnr) > first + 8
    assert float(out.psnr) > 22


def test_quantizer_restarts_dead_codes_and_reports_usage():
    torch.manual_seed(0)
    tok = Tokenizer(micro_cfg().tokenizer)
    q = tok.quantizer
    q.train()
    z = torch.randn(4, 16, 8, 8)
    q(z)
    q.codebook[:10] += 100.0  # make 10 codes unreachable
    q.ema_sum[:10] = q.codebook[:10] * q.ema_count[:10, None]
    q.hits.zero_()
    for _ in range(q.restart_every):
        out = q(z + 0.01 * torch.randn_like(z))
    assert float(q.usage) < 1.0  # the window that just ended had dead codes ...
    assert float(q.codebook[:10].abs().max()) < 50  # ... and they were moved onto the data
    assert 1.0 <= float(out.perplexity) <= 64

def test_dead_codes_restart_where_the_quantisation_error_is_large_and_usage_is_per_window():
    q = Tokenizer(micro_cfg().tokenizer).quantizer
    torch.manual_seed(0)
    flat = torch.randn(400, 16)
    err = torch.zeros(400)
    err[:10] = 100.0  # ten vectors the codebook serves badly; the rest sit on their codes
    q.hits.fill_(1.0)
    q.hits[:10] = 0  # ten codes were not used in the window that ends now
    q._restart_dead(flat, err)
    assert float(q.usage) == pytest.approx(54 / 64)
    near = torch.cdist(q.codebook[:10], flat[:10]).min(1).values  # drawn in proportion to the error
    assert float(near.max()) < 0.1
    assert float(q.hits.sum()) == 0  # the next window counts afresh
    q.hits[:5] = 3.0
    q._restart_dead(flat, err)
    assert float(q.usage) == pytest.approx(5 / 64)  # only what this window used


def test_context_noise_is_a_training_augmentation_and_changed_codes_weigh_more():
    cfg = micro_cfg(noise_prob=1.0, noise_max=0.5)
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    tokens, seeds = random_tokens(2, 5, cfg), torch.tensor([0, 1])
    args = (torch.randint(0, 3, (2, 4)), torch.zeros(2, 4), torch.zeros(2, 4), seeds)
    seen = []
    forward = dyn.forward
    dyn.forward = lambda context, *rest: (seen.append(context.clone()), forward(context, *rest))[1]
    dyn.compute_loss(tokens, *args)
    assert (seen[-1] != tokens[:, :-1]).any()  # some context codes replaced by random ones
    dyn.cfg.noise_prob = 0.0
    dyn.compute_loss(tokens, *args)
    assert torch.equal(seen[-1], tokens[:, :-1])
    dyn.forward = forward
    # changed codes weigh changed_weight; a window where nothing changes does not notice the weight
    losses = {}
    for w in (1.0, 4.0):
        dyn.cfg.changed_weight = w
        still = tokens[:, :1].expand(-1, 5, -1, -1)
        losses[w] = (float(dyn.compute_loss(tokens, *args).token_loss),
                     float(dyn.compute_loss(still, *args).token_loss))
    assert losses[1.0][0] != losses[4.0][0]  # the same codes and masks, weighted otherwise
    assert losses[1.0][1] == pytest.approx(losses[4.0][1], rel=1e-6)


def test_nearest_code_is_the_same_in_chunks_as_by_brute_force():
    q = Tokenizer(micro_cfg().tokenizer).quantizer
    torch.manual_seed(0)
    q.codebook.copy_(torch.randn_like(q.codebook))
    flat = torch.randn(1000, q.D)
    brute = torch.cdist(flat.double(), q.codebook.double()).pow(2)
    for chunk in (1 << 22, 3 * q.V + 5, 1):  # one chunk, uneven chunks, one row at a time
        idx, dist = q.nearest(flat, chunk=chunk)
        assert torch.equal(idx, brute.argmin(1)), chunk
        assert torch.allclose(dist.double(), brute.min(1).values, atol=1e-4), chunk
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training autocasts on CUDA; distances stay fp32
        assert torch.equal(q.nearest(flat)[0], brute.argmin(1))



def _loss_and_grads(module, loss_fn):
    module.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same(ref, got):
    assert torch.allclose(ref[0], got[0], rtol=1e-6, atol=1e-7), (ref[0], got[0])
    assert ref[1].keys() == got[1].keys() and ref[1]
    for name, g in ref[1].items():
        assert torch.allclose(g, got[1][name], rtol=1e-5, atol=1e-7), name


@pytest.mark.parametrize("encoder", ["patch", "conv"])
def test_tokenizer_activation_checkpointing_gives_the_same_loss_and_gradients(encoder, monkeypatch):
    import copy

    import worldmodel.tokenizer as tokenizer_module

    calls = []

    def counting(fn, *args, **kw):
        calls.append(type(fn).__name__)
        return torch.utils.checkpoint.checkpoint(fn, *args, **kw)

    monkeypatch.setattr(tokenizer_module, "checkpoint", counting)
    torch.manual_seed(0)
    cfg = micro_cfg().tokenizer
    cfg.encoder = encoder
    fresh = Tokenizer(cfg).train()
    frames = balls(4)
    results = []
    for on in (False, True):
        tok = copy.deepcopy(fresh)  # the quantizer's EMA buffers change in a training forward
        tok.cfg.checkpoint_activations = on
        results.append(_loss_and_grads(tok, lambda t=tok: t.compute_loss(frames).loss))
    _assert_same(*results)
    blocks = cfg.res_blocks * len(cfg.channels) + (cfg.encoder_blocks if encoder == "patch" else
                                                   cfg.res_blocks * len(cfg.channels))
    assert len(calls) == blocks and set(calls) <= {"ResBlock", "PatchBlock"}
    calls.clear()
    tok.encode(frames), tok.decode(tok.encode(frames))  # no grad: nothing is checkpointed
    tok.eval().decoder(tok.quantizer.lookup(tok.encode(frames))).sum().backward()  # eval mode: neither
    assert calls == []


@pytest.fixture
def dynamics_checkpoints(monkeypatch):
    """The ``use_reentrant`` argument of every activation checkpoint the dynamics takes, in order."""
    import worldmodel.dynamics as dynamics_module

    calls = []

    def counting(fn, *args, **kw):
        calls.append(kw.get("use_reentrant"))
        return torch.utils.checkpoint.checkpoint(fn, *args, **kw)

    monkeypatch.setattr(dynamics_module, "checkpoint", counting)
    return calls


def test_dynamics_activation_checkpointing_gives_the_same_loss_and_gradients(dynamics_checkpoints):
    calls = dynamics_checkpoints
    torch.manual_seed(0)
    cfg = micro_cfg()  # K = 3 < T - 1 = 5 groups: the cache is trimmed inside the window
    dyn = Dynamics(cfg.dynamics, cfg.action_space).train()
    tokens, actions = random_tokens(2, 6, cfg), torch.randint(0, 3, (2, 5))
    z, seeds = torch.zeros(2, 5), torch.tensor([3, 4])
    results = []
    for on in (False, True):
        dyn.cfg.checkpoint_activations = on
        results.append(_loss_and_grads(dyn, lambda: dyn.compute_loss(tokens, actions, z, z, seeds).loss))
    _assert_same(*results)
    assert results[1][1].keys() == {n for n, p in dyn.named_parameters()}  # every parameter got a gradient
    assert calls == [False] * (5 * cfg.dynamics.n_layers)  # every block of every group, non-reentrant
    # generation (no grad) and evaluation run plainly, with the same results as without the flag
    calls.clear()
    dyn.eval()
    state = dyn.start(tokens[:, :3])
    pred, _, _ = dyn.predict(state, actions[:, 0], temperature=0.0)
    with torch.no_grad():
        dyn.train()
        _forward(dyn, tokens, actions)
    assert calls == []
    dyn.cfg.checkpoint_activations = False
    dyn.eval()
    again, _, _ = dyn.predict(dyn.start(tokens[:, :3]), actions[:, 0], temperature=0.0)
    assert torch.equal(pred, again)


@pytest.mark.parametrize("context, frames", [(3, 7), (1, 5), (4, 3)])
def test_parallel_frames_gives_the_per_frame_loops_loss_and_gradients(context, frames, dynamics_checkpoints):
    """``parallel_frames``: every layer's group passes batched into one. Windows longer than the
    context (groups with fewer groups before them, then with K-1), K = 1 (no cache) and windows shorter
    than the context; with activation checkpointing, one checkpoint per layer instead of per group."""
    calls = dynamics_checkpoints
    torch.manual_seed(0)
    cfg = micro_cfg(context=context, copy_logit=2.0, pixel_codes=True)
    dyn = with_thumbnails(Dynamics(cfg.dynamics, cfg.action_space).train())
    tokens, actions = random_tokens(2, frames, cfg), torch.randint(0, 3, (2, frames - 1))
    z, seeds = torch.zeros(2, frames - 1), torch.tensor([3, 4])
    results = []
    for parallel, recompute in ((False, False), (True, False), (True, True)):
        dyn.cfg.parallel_frames, dyn.cfg.checkpoint_activations = parallel, recompute
        results.append(_loss_and_grads(dyn, lambda: dyn.compute_loss(tokens, actions, z, z, seeds).loss))
    _assert_same(results[0], results[1])
    _assert_same(results[0], results[2])
    assert results[0][1].keys() == {n for n, p in dyn.named_parameters()}
    assert calls == [False] * cfg.dynamics.n_layers


def test_foreground_mask_finds_small_objects():
    x = balls(3)
    m = foreground_mask(x)
    assert m.shape == (3, 32, 32)
    assert 0 < m.float().mean() < 0.5  # background is the mode


# ---------------------------------------------------------------------- dynamics
def _forward(dyn, tokens, actions, known=True):
    B, T = tokens.shape[:2]
    query = torch.full_like(tokens[:, 1:], dyn.V)
    prev_known = torch.full((B, T - 1), known)
    prev_known[:, 0] = False
    return dyn(tokens[:, :-1], query, actions, prev_known, torch.zeros(B, T - 1, dtype=torch.long))


def test_dynamics_shapes_and_loss():
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    tokens = random_tokens(2, 5, cfg)
    actions = torch.randint(0, 3, (2, 4))
    out = _forward(dyn, tokens, actions)
    assert out.logits.shape == (2, 4, 8, 8, 64)
    assert out.reward.shape == (2, 4) and out.termination.shape == (2, 4)
    loss = dyn.compute_loss(tokens, actions, torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([1, 2]))
    assert math.isfinite(float(loss.loss.detach()))
    assert abs(float(loss.token_loss) - math.log(64)) < 1.0  # near uniform at init
    loss.loss.backward()
    assert all(p.grad is not None for n, p in dyn.named_parameters() if p.requires_grad), \
        [n for n, p in dyn.named_parameters() if p.grad is None]
    # the pixel loss reaches the dynamics through the frozen decoder, and leaves the tokenizer alone
    tok = Tokenizer(cfg.tokenizer).eval().requires_grad_(False)
    dyn.cfg.pixel_weight = 10.0
    dyn.zero_grad()
    loss = dyn.compute_loss(tokens, actions, torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([1, 2]), tok)
    assert float(loss.pixel_loss) > 0
    dyn.pixel_loss(_forward(dyn, tokens, actions).logits[:, -1], tokens[:, -1],
                   torch.ones(2, 8, 8, dtype=torch.bool), tok).backward()
    assert dyn.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tok.parameters())



def test_patch_order_round_trips_and_matches_the_embedding():
    """Generation samples codes in the head's patch order (no copy of the logits); the reorder must be
    the one ``embed`` and ``unpatch`` use, and exactly invertible."""
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    h, w = cfg.dynamics.grid
    x = torch.arange(2 * h * w).view(2, h, w)
    patches = dyn.to_patches(x)  # (B, P, p·p)
    assert patches.shape == (2, dyn.P, dyn.p ** 2)
    assert torch.equal(dyn.from_patches(patches), x)
    assert patches[0, 1].tolist() == x[0, :2, 2:4].flatten().tolist()  # position (0, 1): rows 0-1, cols 2-3
    logits = torch.randn(2, dyn.P, dyn.p ** 2 * dyn.V)
    assert torch.equal(dyn.unpatch(logits), dyn.from_patches(logits.view(2, dyn.P, dyn.p ** 2, dyn.V)))
    # embed merges the same p×p codes into a position: a code moved within its patch changes only it
    tokens = torch.zeros(1, 1, h, w, dtype=torch.long)
    moved = tokens.clone()
    moved[0, 0, 1, 3] = 5
    changed = (dyn.embed(tokens) != dyn.embed(moved)).any(-1)[0, 0]  # (P,)
    assert changed.nonzero().flatten().tolist() == [1]

def test_loss_of_a_sample_does_not_depend_on_the_batch():
    """All randomness of sample i comes from seeds[i]: the basis of the DDP equality."""
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    tokens, actions = random_tokens(4, 5, cfg), torch.randint(0, 3, (4, 4))
    z = torch.zeros(4, 4)
    seeds = torch.tensor([5, 6, 7, 8])
    full = dyn.compute_loss(tokens, actions, z, z, seeds).token_loss
    halves = [dyn.compute_loss(tokens[s], actions[s], z[s], z[s], seeds[s]).token_loss
              for s in (slice(0, 2), slice(2, 4))]
    assert torch.allclose(full, (halves[0] + halves[1]) / 2, atol=1e-5)


def test_own_context_feeds_the_models_predictions_back_and_keeps_the_batch_equality():
    """``own_context_prob``: context frame t >= 1 becomes the model's one-pass argmax prediction of it
    from the real frames before it; the loss of a sample still depends on its seed alone."""
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    tokens, actions = random_tokens(4, 5, cfg), torch.randint(0, 3, (4, 4))
    known = torch.ones(4, 4, dtype=torch.bool)
    known[:, 0] = False
    every = dyn._own_context(tokens, actions, known, torch.ones(4, 4, dtype=torch.bool))
    masked = torch.full_like(tokens[:, 1:], dyn.V)
    own = dyn(tokens[:, :-1], masked, actions, known, torch.zeros(4, 4, dtype=torch.long)).logits.argmax(-1)
    assert torch.equal(every[:, 0], tokens[:, 0]) and torch.equal(every[:, 1:], own[:, :-1])
    assert torch.equal(dyn._own_context(tokens, actions, known, torch.zeros(4, 4, dtype=torch.bool)),
                       tokens[:, :-1])
    z, seeds = torch.zeros(4, 4), torch.tensor([5, 6, 7, 8])
    plain = dyn.compute_loss(tokens, actions, z, z, seeds).token_loss
    dyn.cfg.own_context_prob = 1.0
    full = dyn.compute_loss(tokens, actions, z, z, seeds).token_loss
    halves = [dyn.compute_loss(tokens[s], actions[s], z[s], z[s], seeds[s]).token_loss
              for s in (slice(0, 2), slice(2, 4))]
    assert not torch.allclose(full, plain)
    assert torch.allclose(full, (halves[0] + halves[1]) / 2, atol=1e-5)


def test_own_context_steps_feed_back_the_models_own_rollout():
    """``own_context_steps`` k: the context is the model's own argmax rollout, exactly for its first k
    frames: the loop below generates frame by frame from frame 0 alone."""
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    tokens, actions = random_tokens(2, 5, cfg), torch.randint(0, 3, (2, 4))
    known = torch.ones(2, 4, dtype=torch.bool)
    known[:, 0] = False
    every = torch.ones(2, 4, dtype=torch.bool)
    one_step = dyn._own_context(tokens, actions, known, every)
    rollout = tokens[:, :1]
    for t in range(1, 4):  # frame t from the rollout's frames 0..t-1 (frames after them cannot matter)
        ctx = torch.cat([rollout, tokens[:, t:-1]], 1)
        masked = torch.full_like(tokens[:, 1:], dyn.V)
        own = dyn(ctx, masked, actions, known, torch.zeros(2, 4, dtype=torch.long)).logits.argmax(-1)
        rollout = torch.cat([rollout, own[:, t - 1:t]], 1)
    dyn.cfg.own_context_steps = 3
    three = dyn._own_context(tokens, actions, known, every)
    assert torch.equal(three[:, :4], rollout)  # frames 0 (real) and 1..3: the 3-step rollout
    assert torch.equal(three[:, :2], one_step[:, :2]) and not torch.equal(three, one_step)
    dyn.cfg.own_context_steps = 1
    assert torch.equal(dyn._own_context(tokens, actions, known, every), one_step)  # the default: unchanged
    cfg.dynamics.own_context_steps = 0
    with pytest.raises(ValueError, match="own_context_steps"):
        Dynamics(cfg.dynamics, cfg.action_space)
    cfg.dynamics.own_context_steps, cfg.dynamics.own_context_prob = 3, 0.0
    with pytest.raises(ValueError, match="does nothing without own_context_prob"):
        Dynamics(cfg.dynamics, cfg.action_space)


def test_future_frames_and_actions_cannot_change_past_predictions():
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    tokens, actions = random_tokens(1, 5, cfg), torch.tensor([[0, 1, 2, 0]])
    base = _forward(dyn, tokens, actions).logits  # (1, 4, h, w, V): predictions of frames 1..4
    later = tokens.clone()
    later[:, 3] = random_tokens(1, 1, cfg, seed=9)[:, 0]  # change frame 3
    out = _forward(dyn, later, actions).logits
    assert torch.allclose(out[:, :3], base[:, :3], atol=1e-6)  # frames 1..3 predicted without frame 3
    assert not torch.allclose(out[:, 3], base[:, 3], atol=1e-4)  # frame 4 is predicted from it
    act = actions.clone()
    act[:, 2] = 1  # a_2 leads from frame 2 to frame 3
    out = _forward(dyn, tokens, act).logits
    assert torch.allclose(out[:, :2], base[:, :2], atol=1e-6)
    assert not torch.allclose(out[:, 2], base[:, 2], atol=1e-4)


def test_query_codes_of_one_frame_see_each_other_but_not_other_frames():
    torch.manual_seed(0)
    cfg = micro_cfg()
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    tokens, actions = random_tokens(1, 5, cfg), torch.tensor([[0, 1, 2, 0]])
    B, T = 1, 5
    query = torch.full_like(tokens[:, 1:], dyn.V)
    pk, nl = torch.zeros(B, T - 1, dtype=torch.bool), torch.zeros(B, T - 1, dtype=torch.long)
    base = dyn(tokens[:, :-1], query, actions, pk, nl).logits
    q2 = query.clone()
    q2[:, 1, 0, 0] = 7  # reveal one code of frame 2's query
    out = dyn(tokens[:, :-1], q2, actions, pk, nl).logits
    assert torch.allclose(out[:, 0], base[:, 0], atol=1e-6)
    assert not torch.allclose(out[:, 1], base[:, 1], atol=1e-4)
    assert torch.allclose(out[:, 2:], base[:, 2:], atol=1e-6)


def with_thumbnails(dyn: Dynamics, seed: int = 0) -> Dynamics:
    """``pixel_codes``: random code thumbnails (zero ones would make the pixel paths vanish)."""
    g = torch.Generator().manual_seed(seed)
    dyn.code_pixels.copy_(torch.rand(dyn.code_pixels.shape, generator=g) * 2 - 1)
    return dyn


@pytest.mark.parametrize("copy_logit, pixel_codes", [(0.0, False), (3.0, False), (3.0, True)])
def test_streaming_generation_matches_teacher_forced_forward(copy_logit, pixel_codes):
    """start/predict (KV cache, memory, merged passes) computes what the training forward computes."""
    torch.manual_seed(0)
    cfg = micro_cfg(maskgit_steps=1, copy_logit=copy_logit, pixel_codes=pixel_codes)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    if pixel_codes:
        with_thumbnails(dyn)
    T = 7  # longer than the window K = 3, so the cache is trimmed and the memory matters
    tokens, actions = random_tokens(2, T, cfg), torch.randint(0, 3, (2, T - 1))
    ref = _forward(dyn, tokens, actions).logits.argmax(-1)  # (2, T-1, h, w)
    state = dyn.start(tokens[:, :1])
    for t in range(T - 1):
        pred, _, _ = dyn.predict(state, actions[:, t], steps=1, temperature=0.0)
        assert torch.equal(pred, ref[:, t]), t
        state.pending = tokens[:, t + 1]  # teacher forcing: the real frame becomes the context


def test_copy_gate_adds_to_the_logit_of_the_code_that_was_there():
    """``copy_logit``: each code's logit of the newest context frame's code at its place gets the gate
    (starting at copy_logit), and nothing else changes; 0 adds no weights (older checkpoints load)."""
    torch.manual_seed(0)
    plain = Dynamics(micro_cfg().dynamics, {"type": "discrete", "n": 3}).eval()
    cfg = micro_cfg(copy_logit=5.0)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    assert plain.copy_gate is None and "copy_gate.bias" not in plain.state_dict()
    dyn.load_state_dict(plain.state_dict(), strict=False)
    tokens, actions = random_tokens(2, 4, cfg), torch.randint(0, 3, (2, 3))
    with torch.no_grad():
        a, b = _forward(plain, tokens, actions).logits, _forward(dyn, tokens, actions).logits
    bonus = F.one_hot(tokens[:, :-1], dyn.V).float() * 5.0  # (B, N, h, w, V): the context frame's code
    assert torch.allclose(b, a + bonus, atol=1e-5)


def test_pixel_codes_give_alike_codes_alike_inputs_and_logits():
    """``pixel_codes``: the thumbnails enter each code's input embedding and score every code in a second
    head, so two codes with one thumbnail differ only by what was learned for each id; off, no weights."""
    torch.manual_seed(0)
    assert Dynamics(micro_cfg().dynamics, {"type": "discrete", "n": 3}).pixel_in is None
    cfg = micro_cfg(pixel_codes=True)
    dyn = with_thumbnails(Dynamics(cfg.dynamics, cfg.action_space).eval())
    added = {"code_pixels", "pixel_in.weight", "pixel_key.weight", "pixel_query.weight"}
    assert added <= dyn.state_dict().keys()
    with torch.no_grad():
        dyn.tok_emb.weight[5] = dyn.tok_emb.weight[9]
        weight, bias = dyn.head.weight.view(-1, dyn.V, dyn.cfg.d_model), dyn.head.bias.view(-1, dyn.V)
        weight[:, 5], bias[:, 5] = weight[:, 9], bias[:, 9]
    tokens, actions = random_tokens(2, 4, cfg), torch.randint(0, 3, (2, 3))
    logits = lambda: _forward(dyn, tokens, actions).logits  # noqa: E731
    with torch.no_grad():
        differ = logits()
        assert not torch.allclose(differ[..., 5], differ[..., 9], atol=1e-4)  # other thumbnails
        dyn.code_pixels[5] = dyn.code_pixels[9]
        same = logits()
        assert torch.allclose(same[..., 5], same[..., 9], atol=1e-5)
        assert torch.equal(dyn.embed(torch.full((1, 1, 8, 8), 5)), dyn.embed(torch.full((1, 1, 8, 8), 9)))


def test_set_code_pixels_measures_each_codes_mean_thumbnail():
    cfg = micro_cfg(pixel_codes=True)
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    h, w = cfg.dynamics.grid  # 8×8 codes of 4×4 pixels on 32×32 frames
    frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    frames[0, :4, :4] = 255  # code 3 at (0, 0) stands for white there, and for black in frame 1
    frames[0, :4, 4:8, 0] = 255  # code 7 is red wherever it is
    frames[1, 4:8, :4, 0] = 255
    tokens = torch.zeros(2, h, w, dtype=torch.long)
    tokens[:, 0, 0] = 3
    tokens[0, 0, 1] = tokens[1, 1, 0] = 7
    assert dyn.set_code_pixels([(frames[:1], tokens[:1]), (frames[1:], tokens[1:])]) == 3
    thumbs = dyn.code_pixels.view(-1, 3, 4, 4)
    assert torch.allclose(thumbs[3], torch.zeros(3, 4, 4))  # (1 + -1) / 2
    assert torch.allclose(thumbs[7][0], torch.ones(4, 4))  # red
    assert torch.allclose(thumbs[7][1:], -torch.ones(2, 4, 4))
    assert torch.allclose(thumbs[0], -torch.ones(3, 4, 4))  # black everywhere else
    unseen = dyn.code_pixels[[0, 3, 7]].mean(0)
    assert torch.allclose(dyn.code_pixels[1], unseen) and torch.allclose(dyn.code_pixels[63], unseen)
    with pytest.raises(ValueError, match="no frames"):
        dyn.set_code_pixels([])


def test_each_frame_costs_exactly_maskgit_steps_passes():
    torch.manual_seed(0)
    cfg = micro_cfg(maskgit_steps=4)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    state = dyn.start(random_tokens(1, 4, cfg))
    p0 = state.passes
    tokens, _, _ = dyn.predict(state, torch.tensor([1]), generator=torch.Generator().manual_seed(0))
    assert state.passes - p0 == 4
    assert int((tokens == dyn.V).sum()) == 0  # every code decided


def test_memory_bank_is_read_written_and_the_window_is_bounded():
    torch.manual_seed(0)
    cfg = micro_cfg(context=2, maskgit_steps=1)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    with torch.no_grad():  # make the memory's influence large enough to see in argmax-free logits
        for b in dyn.blocks:
            b.mem.proj.weight.mul_(50)
    tokens = random_tokens(1, 5, cfg)
    other = tokens.clone()
    other[:, 0] = random_tokens(1, 1, cfg, seed=3)[:, 0]  # differs only in frame 0, outside the window

    def next_logits(toks, write=True):
        original = dyn.memory.write
        if not write:
            dyn.memory.write = lambda m, frame: m  # ablation: memory never written
        try:
            state = dyn.start(toks)
            h, w = cfg.dynamics.grid
            q = dyn.query_input(torch.full((1, 1, h, w), dyn.V), torch.tensor([[1]]))[:, 0]
            hq = dyn._advance(state, state.pending, state.pending_action, state.pending_known, q)
            return dyn._heads(hq, state.pending)[0], state
        finally:
            dyn.memory.write = original

    a, state = next_logits(tokens)
    b, _ = next_logits(other)
    assert not torch.allclose(a, b, atol=1e-4)  # frame 0 reaches the prediction: through the memory
    a0, _ = next_logits(tokens, write=False)
    b0, _ = next_logits(other, write=False)
    assert torch.allclose(a0, b0, atol=1e-6)  # without memory writes the window (K=2) cannot see frame 0
    assert not torch.allclose(a, a0, atol=1e-4)  # the memory is read
    assert not torch.allclose(state.memory, dyn.memory.init(1))  # and written


def test_state_is_bounded_over_200_generated_frames():
    torch.manual_seed(0)
    cfg = micro_cfg(maskgit_steps=1)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    state = dyn.start(random_tokens(2, 2, cfg))
    g = torch.Generator().manual_seed(0)
    sizes = []
    for _ in range(200):
        dyn.predict(state, torch.tensor([1, 2]), generator=g)
        nbytes = state.memory.numel() + sum(k.numel() + v.numel() for k, v in state.cache)
        sizes.append(nbytes)
    K, P = cfg.dynamics.context, dyn.P
    assert state.cache[0][0].shape[2] == K * P
    assert state.memory.shape == (2, cfg.dynamics.memory_slots, cfg.dynamics.d_model)
    assert len(set(sizes[K:])) == 1  # constant after the window has filled


def test_overfit_one_batch():
    torch.manual_seed(0)
    cfg = micro_cfg(d_model=64, noise_prob=0.0, context_action_drop=0.0)
    dyn = Dynamics(cfg.dynamics, cfg.action_space)
    h, w = cfg.tokenizer.grid
    # a structured sequence: a block of code 5 moving right over code 1
    tokens = torch.ones(2, 5, h, w, dtype=torch.long)
    for t in range(5):
        tokens[0, t, 2:4, t:t + 2] = 5
        tokens[1, t, 4:6, 6 - t:8 - t] = 9
    actions, z = torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4)
    opt = torch.optim.AdamW(dyn.parameters(), lr=3e-3)
    for step in range(250):
        out = dyn.compute_loss(tokens, actions, z, z, torch.tensor([step, step + 1000]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    assert float(out.token_loss) < 0.2
    state = dyn.eval().start(tokens[:, :3], actions[:, :2])
    pred, _, _ = dyn.predict(state, actions[:, 2], temperature=0.0)
    assert (pred == tokens[:, 3]).float().mean() > 0.9  # generated from scratch (all codes masked)


def test_box_actions():
    torch.manual_seed(0)
    space = {"type": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}
    model = WorldModel(micro_cfg(space)).eval()
    ctx = balls(3)[None]  # (1, 3, 32, 32, 3)
    acts = torch.rand(1, 4, 2) * 2 - 1
    out = model.generate(ctx, acts, 4, num_samples=2, seed=0, context_actions=torch.zeros(1, 2, 2))
    assert out.frames.shape == (1, 2, 4, 32, 32, 3)
    tokens = random_tokens(2, 5, model.cfg)
    loss = model.dynamics.compute_loss(tokens, torch.rand(2, 4, 2), torch.zeros(2, 4), torch.zeros(2, 4),
                                       torch.tensor([0, 1]))
    loss.loss.backward()
    assert model.dynamics.action.linear.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------- model
def test_generate_shapes_seeds_and_resizing():
    torch.manual_seed(0)
    model = WorldModel(micro_cfg()).eval()
    big = np.repeat(np.repeat(balls(2).numpy(), 2, 1), 2, 2)  # (2, 64, 64, 3): resized to 32²
    ctx = np.stack([big, big])  # (B=2, C=2, 64, 64, 3)
    acts = np.array([[0, 1, 2, 1, 0], [2, 2, 2, 2, 2]])
    a = model.generate(ctx, acts, 5, num_samples=3, seed=1)
    b = model.generate(ctx, acts, 5, num_samples=3, seed=1)
    c = model.generate(ctx, acts, 5, num_samples=3, seed=2)
    assert a.frames.shape == (2, 3, 5, 32, 32, 3) and a.frames.dtype == torch.uint8
    assert a.rewards.shape == (2, 3, 5) and a.terminations.shape == (2, 3, 5)
    assert a.tokens.shape == (2, 3, 5, 8, 8)
    assert torch.equal(a.frames, b.frames)
    assert not torch.equal(a.tokens, c.tokens)
    assert not torch.equal(a.tokens[:, 0], a.tokens[:, 1])  # samples differ at temperature 1
    single = model.generate(ctx[0], acts[0], 5, seed=1)  # no batch axis
    assert single.frames.shape == (1, 1, 5, 32, 32, 3)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    cfg = micro_cfg()
    model = WorldModel(cfg)
    model.tokenizer.train()
    model.tokenizer.compute_loss(balls(4)).loss.backward()  # buffers and grads become non-trivial
    opt = torch.optim.AdamW(model.dynamics.parameters(), lr=1e-3)
    loss = model.dynamics.compute_loss(random_tokens(2, 5, cfg), torch.randint(0, 3, (2, 4)),
                                       torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor([0, 1])).loss
    loss.backward()
    opt.step()
    ckpt.save_stage(tmp_path, "tokenizer", model.tokenizer, cfg, train_state={"step": 3})
    ckpt.save_stage(tmp_path, "dynamics", model.dynamics, cfg, opt, {"step": 7})
    assert not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob(".*old"))
    loaded = ckpt.load(tmp_path)
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and t1.dtype == t2.dtype and torch.equal(t1, t2), n1
    opt2 = torch.optim.AdamW(loaded.dynamics.parameters(), lr=1e-3)
    state = ckpt.load_stage(tmp_path, "dynamics", loaded.dynamics, opt2)
    assert state["step"] == 7
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name in s1["state"][k]:
            assert torch.equal(s1["state"][k][name], s2["state"][k][name])
    model.eval()
    ctx, acts = balls(2)[None], torch.tensor([[1, 2, 0]])
    a, b = model.generate(ctx, acts, 3, seed=4), loaded.generate(ctx, acts, 3, seed=4)
    assert torch.equal(a.frames, b.frames)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))


def test_interrupted_checkpoint_swap_is_recovered(tmp_path):
    cfg = micro_cfg()
    model = WorldModel(cfg)
    ckpt.save_stage(tmp_path, "tokenizer", model.tokenizer, cfg, train_state={"step": 1})
    (tmp_path / "tokenizer").rename(tmp_path / ".tokenizer.old")  # killed between the two renames
    assert ckpt.has_stage(tmp_path, "tokenizer")
    assert ckpt.load_stage(tmp_path, "tokenizer", WorldModel(cfg).tokenizer)["step"] == 1


@pytest.mark.parametrize("call, error, message", [
    (dict(actions=[[3, 0]]), ValueError, r"actions must be in \[0, 3\)"),  # 3 = the internal "unknown" id
    (dict(actions=[[-1, 0]]), ValueError, r"actions must be in \[0, 3\)"),
    (dict(actions=[[1.7, 0.0]]), TypeError, "integer ids"),
    (dict(context_actions=np.zeros((1, 5), np.int64)), ValueError,
     r"context_actions must be \(1, 1\[, k\]\)"),
    (dict(temperature=float("nan")), ValueError, "temperature must be a finite number"),
    (dict(temperature=-1.0), ValueError, "temperature must be a finite number"),
    (dict(top_k=0), ValueError, "top_k must be None or an integer >= 1"),
    (dict(top_k=10_000), ValueError, "exceeds the"),
    (dict(num_samples=0), ValueError, "num_samples must be an integer >= 1"),
    (dict(horizon=0), ValueError, "horizon must be None"),
    (dict(frames=np.zeros((1, 2, 32, 32, 4), np.uint8)), ValueError, "frames must be RGB"),
    (dict(actions=[0, 1]), ValueError, r"need actions \(B, horizon"),  # a batch of frames, actions without
])
def test_generate_refuses_bad_input_with_a_clear_error(call, error, message):
    model = WorldModel(micro_cfg()).eval()
    kw = dict(frames=balls(2)[None].numpy(), actions=[[0, 1]], horizon=2)
    kw.update(call)
    frames, actions = kw.pop("frames"), kw.pop("actions")
    with pytest.raises(error, match=message):
        model.generate(frames, np.asarray(actions), **kw)


def test_box_actions_are_checked_against_the_space():
    space = {"type": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}
    model = WorldModel(micro_cfg(space)).eval()
    ctx = balls(2)[None]
    for bad, message in ((torch.full((1, 2, 2), 5.0), "must lie in"),
                         (torch.full((1, 2, 2), float("nan")), "NaN"), (torch.zeros(1, 2, 3), "shape")):
        with pytest.raises(ValueError, match=message):
            model.generate(ctx, bad, 2)


def test_damaged_checkpoints_name_the_file(tmp_path):
    cfg = micro_cfg()
    model = WorldModel(cfg)
    for stage, module in (("tokenizer", model.tokenizer), ("dynamics", model.dynamics)):
        ckpt.save_stage(tmp_path, stage, module, cfg, train_state={"step": 1})
    assert ckpt.load(tmp_path, device="auto").device.type in ("cpu", "cuda")
    weights = tmp_path / "dynamics" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="dynamics/model.safetensors: unreadable weights"):
        ckpt.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not a valid world model config"):
        ckpt.load(tmp_path)
