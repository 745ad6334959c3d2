"""Generation internals: code sampling from pre-drawn uniforms, and the CUDA-graph step.

The graph step is tested on CPU through its uncaptured path (``StepGraph(capture=False)``): the same
static buffers, the same write-back, run eagerly. Capture itself is CUDA only; on a GPU,
``python -m worldmodel.bench --device cuda --cuda-graph`` runs it.
"""
import math

import numpy as np
import pytest
import torch
from test_worldmodel import balls, micro_cfg, random_tokens

from worldmodel import sampling
from worldmodel.dynamics import Dynamics
from worldmodel.graphs import StepGraph
from worldmodel.model import WorldModel

torch.set_num_threads(1)


def test_sampled_codes_follow_the_softmax_and_respect_top_k():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -30.0])
    n = 200_000
    u = sampling.draw(n, (), g, "cpu")
    idx, conf = sampling.sample_codes(logits.expand(n, -1), 1.0, None, u)
    freq = torch.bincount(idx, minlength=5).float() / n
    assert torch.allclose(freq, logits.softmax(-1), atol=4e-3)
    assert torch.allclose(conf, logits.log_softmax(-1)[idx])
    # temperature sharpens; top-k never picks outside the k most likely codes, even at u = 0 or ~1
    idx_cold, _ = sampling.sample_codes(logits.expand(n, -1), 0.25, None, u)
    assert (idx_cold == 0).float().mean() > freq[0] + 0.2
    edges = torch.tensor([0.0, 1e-9, 0.5, 1 - 1e-9])
    idx_k, conf_k = sampling.sample_codes(logits.expand(4, -1), 1.0, 2, edges)
    assert set(idx_k.tolist()) <= {0, 1} and torch.isfinite(conf_k).all()
    both = sampling.sample_codes(logits.expand(n, -1), 1.0, 2, u)[0]
    assert set(both.tolist()) == {0, 1}  # both of the k codes, in their renormalised proportions
    assert abs((both == 0).float().mean() - logits[:2].softmax(-1)[0]) < 4e-3
    one, conf_one = sampling.sample_codes(logits.expand(4, -1), 1.0, 1, edges)
    assert one.tolist() == [0] * 4 and torch.isfinite(conf_one).all()
    # temperature 0 is the argmax, whatever the uniforms
    assert sampling.sample_codes(logits.expand(4, -1), 0.0, None, edges)[0].tolist() == [0] * 4


def test_per_row_generators_make_a_row_independent_of_its_batch():
    rows = sampling.draw(3, (2, 5), [torch.Generator().manual_seed(s) for s in (7, 8, 9)], "cpu")
    alone = sampling.draw(1, (2, 5), [torch.Generator().manual_seed(8)], "cpu")
    assert torch.equal(rows[1], alone[0])
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        sampling.draw(3, (2,), [torch.Generator(), torch.Generator()], "cpu")


def test_keyed_uniforms_are_uniform_and_a_function_of_seed_stream_and_position_only():
    """The training masks' random numbers: row b depends on seeds[b] alone (the DDP equality), a
    stream number separates draws, and the values look uniform and uncorrelated."""
    seeds = torch.tensor([3, 2**40 + 3, 7, 2**62 - 1])
    u = sampling.keyed_uniform(seeds, 5, (4, 50))
    assert u.shape == (4, 4, 50) and u.dtype == torch.float32 and 0 <= u.min() and u.max() < 1
    assert torch.equal(u[2], sampling.keyed_uniform(seeds[2:3], 5, (4, 50))[0])
    assert not torch.equal(u[0], u[1])  # the seeds' high bits count
    assert (u != sampling.keyed_uniform(seeds, 6, (4, 50))).float().mean() > 0.99
    big = sampling.keyed_uniform(torch.arange(2000), 1, (500,))
    assert abs(float(big.mean()) - 0.5) < 2e-3 and abs(float(big.var()) - 1 / 12) < 1e-3
    assert abs(float(torch.corrcoef(big[:, :2].T)[0, 1])) < 0.05  # neighbouring counters
    assert abs(float(torch.corrcoef(big[:2])[0, 1])) < 0.15  # neighbouring seeds (500 values)


@pytest.mark.parametrize("n_context,temperature,schedule",
                         [(3, 1.0, "cosine"), (1, 1.0, "cosine"), (3, 0.0, "cosine"), (3, 1.0, "adaptive")])
def test_graph_step_gives_the_eager_samples_from_the_same_generator(n_context, temperature, schedule):
    """Context 3 = K: the graph path from the first frame; context 1: eager until the cache is full."""
    torch.manual_seed(0)
    model = WorldModel(micro_cfg(context=3)).eval()
    ctx = torch.stack([balls(n_context, seed=1), balls(n_context, seed=2)])  # (2, C, 32, 32, 3)
    acts = torch.tensor([[0, 1, 2, 1, 0, 2, 2], [2, 2, 1, 0, 0, 1, 2]])
    eager = model.reset(ctx, temperature=temperature, seed=5, schedule=schedule)
    graphed = model.reset(ctx, temperature=temperature, seed=5, schedule=schedule)
    graphed.graph = StepGraph(model, capture=False)
    addresses = set()
    for t in range(acts.shape[1]):
        fe, re, te = model.step(eager, acts[:, t])
        fg, rg, tg = model.step(graphed, acts[:, t])
        assert torch.equal(fe, fg) and torch.equal(re, rg) and torch.equal(te, tg), f"frame {t}"
        assert eager.dynamics.passes == graphed.dynamics.passes
        if graphed.graph.buffers is not None:  # fixed addresses: what a CUDA graph replays
            addresses.add((graphed.dynamics.memory.data_ptr(), graphed.dynamics.cache[0][0].data_ptr()))
    assert len(addresses) == 1
    assert graphed.graph.buffers is not None  # the graph took over


def test_graph_step_refuses_other_shapes_and_other_states_and_cpu_capture():
    model = WorldModel(micro_cfg(context=2)).eval()
    ctx = balls(2)[None]
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        model.reset(ctx, cuda_graph=True)
    with pytest.raises(ValueError, match="pass cuda_graph=True too"):
        model.reset(ctx, compile=True)
    state = model.reset(ctx, seed=0)
    state.graph = StepGraph(model, capture=False)
    model.step(state, torch.tensor([1]))
    with pytest.raises(ValueError, match="replays fixed shapes"):
        state.graph.step(state.dynamics, torch.tensor([1, 2]), torch.rand(2, 3, 2, 8, 8), 1.0, None)
    other = model.reset(ctx, seed=0)
    with pytest.raises(ValueError, match="belongs to another rollout state"):
        state.graph.step(other.dynamics, torch.tensor([1]), torch.rand(1, 3, 2, 8, 8), 1.0, None)
    # load() (the dream envs, after row resets) takes another state of the same shapes only
    state.graph.load(other.dynamics)
    assert other.dynamics.memory is state.graph.buffers["memory"]
    with pytest.raises(ValueError, match="replays memory of shape"):
        state.graph.load(model.reset(torch.cat([ctx, ctx]), seed=0).dynamics)
    with pytest.raises(ValueError, match="needs a cache of 1 frames"):
        state.graph.load(model.reset(ctx[:, :1], seed=0).dynamics)


def _decode_passes(dyn, state, action, u, schedule):
    """predict_with, recording how many codes per row each pass starts with masked."""
    masked, orig = [], dyn.query_input

    def spy(tokens, actions):
        masked.append((tokens == dyn.V).flatten(1).sum(1).tolist())
        return orig(tokens, actions)

    dyn.query_input = spy
    try:
        codes, _, _ = dyn.predict_with(state, action, u, 1.0, None, schedule)
    finally:
        del dyn.query_input
    return codes, masked


def test_adaptive_schedule_commits_sure_codes_at_once_and_spreads_the_unsure_ones():
    """Unsure codes (p(most likely) < maskgit_confidence) are spread over the passes: a share
    (S-s)/(S-s+1) stays masked after pass s, never more than the cosine schedule leaves; rows count
    their own. With every code sure, one pass decides the frame: the codes of a 1-pass decode."""
    cfg = micro_cfg(maskgit_steps=4)
    dyn = Dynamics(cfg.dynamics, cfg.action_space).eval()
    V = cfg.dynamics.codebook_size
    logits = torch.zeros(2, 8, 8, V)
    logits[0, :, :, 3] = 10.0  # row 0: every code sure
    logits[1, :2, :, 3] = 10.0  # row 1: 16 codes sure, 48 unsure (uniform)
    masked = torch.ones(2, 8, 8, dtype=torch.bool)
    assert dyn._unsure_left(logits, masked, remain=59, passes_left=3).tolist() == [0, 36]
    assert dyn._unsure_left(logits, masked, remain=30, passes_left=3).tolist() == [0, 30]  # cosine cap
    assert dyn._unsure_left(logits, masked, remain=59, passes_left=1).tolist() == [0, 24]
    masked[1, 2:4] = False  # committed codes are not unsure
    assert dyn._unsure_left(logits, masked, remain=59, passes_left=1).tolist() == [0, 16]

    torch.manual_seed(0)
    dyn.cfg.maskgit_confidence = 1e-6  # every code is sure
    ctx = random_tokens(2, 3, cfg)
    u = torch.rand(2, 4, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    act = torch.tensor([1, 2])
    adaptive, _ = _decode_passes(dyn, dyn.start(ctx), act, u, "adaptive")
    one_pass, _ = _decode_passes(dyn, dyn.start(ctx), act, u[:, :1], "cosine")
    assert torch.equal(adaptive, one_pass)
    dyn.cfg.maskgit_confidence = 1.0  # every code unsure: 3/4, 2/3 and 1/2 of the rest stay masked
    state = dyn.start(ctx)
    p0 = state.passes
    codes, masked = _decode_passes(dyn, state, act, u, "adaptive")
    assert masked == [[64, 64], [48, 48], [32, 32], [16, 16]]
    assert state.passes - p0 == 4 and int((codes == dyn.V).sum()) == 0
    _, masked = _decode_passes(dyn, dyn.start(ctx), act, u, "cosine")
    assert masked == [[64, 64], [59, 59], [45, 45], [24, 24]]  # ⌊64·cos(π/2·s/4)⌋
    with pytest.raises(ValueError, match="schedule must be one of"):
        dyn.predict_with(dyn.start(ctx), act, u, 1.0, None, "linear")


@pytest.mark.slow
def test_compiled_graph_step_gives_the_eager_codes():
    """``compile=True`` (torch.compile of the captured frame, ~1 CPU-minute to compile): the same codes,
    rewards within float rounding, pixels within one grey level of the eager path."""
    torch.manual_seed(0)
    model = WorldModel(micro_cfg(context=3)).eval()
    ctx = torch.stack([balls(3, seed=1), balls(3, seed=2)])
    acts = torch.tensor([[0, 1, 2, 1], [2, 2, 1, 0]])
    eager = model.reset(ctx, seed=5)
    compiled = model.reset(ctx, seed=5)
    compiled.graph = StepGraph(model, capture=False, compile=True)
    for t in range(acts.shape[1]):
        fe, re, _ = model.step(eager, acts[:, t])
        fc, rc, _ = model.step(compiled, acts[:, t])
        assert torch.equal(eager.dynamics.extra["tokens"], compiled.dynamics.extra["tokens"]), f"frame {t}"
        assert (fe.int() - fc.int()).abs().max() <= 1 and torch.allclose(re, rc, atol=1e-5)


def _model_with_strong_actions(seed=0) -> WorldModel:
    """A random micro model whose action embedding is scaled up, so that what it dreams depends on the
    actions (with small random weights an action may not change an argmax code)."""
    torch.manual_seed(seed)
    model = WorldModel(micro_cfg()).eval()
    with torch.no_grad():
        for p in model.dynamics.action.parameters():
            p.mul_(50.0)
    return model


def test_generation_settings_reach_every_frame():
    """temperature, top_k, the rows' own actions and the context actions all shape what generate
    returns (each was once dropped somewhere between generate, reset and step without a test noticing)."""
    model = _model_with_strong_actions()
    ctx = balls(2)[None].expand(2, -1, -1, -1, -1)  # two rollouts from the same context
    acts = torch.tensor([[0, 0, 0], [2, 2, 2]])
    argmax = model.generate(ctx, acts, 3, temperature=0.0, num_samples=2, seed=1).tokens
    assert torch.equal(argmax, model.generate(ctx, acts, 3, temperature=0.0, num_samples=2, seed=2).tokens)
    assert torch.equal(argmax[:, 0], argmax[:, 1])  # T = 0: no sampling, the seed does not matter
    top1 = model.generate(ctx, acts, 3, temperature=1.0, top_k=1, num_samples=2, seed=3).tokens
    assert torch.equal(top1, argmax)  # top_k = 1 at any temperature is the argmax
    hot = model.generate(ctx, acts, 3, temperature=5.0, num_samples=2, seed=3).tokens
    assert not torch.equal(hot, argmax)
    assert not torch.equal(argmax[0], argmax[1])  # the two rows' actions differ, and so do their dreams
    for b in range(2):  # each sample of a row dreams that row's actions
        alone = model.generate(ctx[b], acts[b], 3, temperature=0.0, seed=1).tokens[0, 0]
        assert torch.equal(argmax[b, 0], alone) and torch.equal(argmax[b, 1], alone)
    with_ctx = [model.generate(ctx[0], acts[0], 3, temperature=0.0, context_actions=torch.tensor([a])).rewards
                for a in (0, 2)]
    assert not torch.allclose(*with_ctx)  # the actions between context frames are used


def test_generated_reward_is_in_reward_units():
    """The reward head regresses symlog(reward); generation returns symexp of it."""
    model = WorldModel(micro_cfg()).eval()
    last = model.dynamics.scalar_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([math.copysign(math.log1p(5.0), 5.0), 0.0]))  # symlog(5), logit 0
    out = model.generate(balls(2)[None], torch.tensor([[0, 1]]), 2, temperature=0.0)
    assert torch.allclose(out.rewards, torch.full_like(out.rewards, 5.0), atol=1e-4)
    assert torch.allclose(out.terminations, torch.full_like(out.terminations, 0.5))


# ---------------------------------------------------------------------- the command lines
def _micro_run(run) -> str:
    from worldmodel.checkpoint import save_stage

    torch.manual_seed(0)
    model = WorldModel(micro_cfg())
    for stage in ("tokenizer", "dynamics"):
        save_stage(run, stage, getattr(model, stage), model.cfg, train_state={"step": 0})
    return str(run)


def test_generate_takes_passes_and_steps_as_its_deprecated_name(tmp_path, capsys, monkeypatch):
    """--passes is the MaskGIT passes per frame (as in worldmodel.dream, where --steps counts steps);
    --steps still works here, with a note."""
    from PIL import Image

    from worldmodel import generate

    run = _micro_run(tmp_path / "run")
    Image.fromarray(balls(1)[0].numpy()).save(tmp_path / "start.png")
    seen = []
    original = WorldModel.generate
    monkeypatch.setattr(WorldModel, "generate", lambda self, *a, **kw: seen.append(kw["maskgit_steps"])
                        or original(self, *a, **kw))
    base = ["--checkpoint", run, "--image", str(tmp_path / "start.png"), "--horizon", "1", "--samples", "1",
            "--device", "cpu", "--out", str(tmp_path / "sheet.png")]
    generate.main([*base, "--passes", "2"])
    generate.main([*base, "--steps", "1"])
    assert seen == [2, 1] and "--steps is deprecated here: use --passes" in capsys.readouterr().err
    for flag, message in [(["--passes", "2", "--steps", "3"], "--steps is the deprecated name of --passes"),
                          (["--passes", "0"], "--passes must be"),
                          (["--passes", "65"], "--passes must be in [1, codes per frame]")]:
        with pytest.raises(SystemExit) as e:
            generate.main([*base, *flag])
        assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # once a FileNotFoundError traceback
        generate.main([*base[:1], str(tmp_path / "nope"), *base[2:]])
    assert e.value.code == 2 and "--checkpoint: " in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    for flag, message in [(["--image", str(tmp_path / "broken.png")], "--image "),  # once PIL's traceback
                          (["--seed", "-1"], "--seed must be >= 0")]:  # once numpy's traceback
        with pytest.raises(SystemExit) as e:
            generate.main([*base, *flag])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, err
    generate.main([*base[:-1], str(tmp_path / "new" / "dir" / "sheet.png")])  # once FileNotFoundError
    assert (tmp_path / "new" / "dir" / "sheet.png").is_file()
    assert not list((tmp_path / "new" / "dir").glob(".*partial*"))


def test_a_16_bit_start_image_keeps_its_grey_levels(tmp_path):
    from PIL import Image

    from worldmodel.generate import read_image

    grey = np.full((8, 8), 30000, np.uint16)  # ≈ 117 of 255 (PIL's own conversion gives 255)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    img = read_image(tmp_path / "grey16.png")
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8 and (img == 117).all()


def test_generate_refuses_mis_shaped_inputs_in_the_callers_terms():
    torch.manual_seed(0)
    model = WorldModel(micro_cfg()).eval()
    ctx = balls(4)

    def ids(*shape):
        return torch.zeros(shape, dtype=torch.long)

    for kw, message in [(dict(actions=ids(1, 3)), r"got shapes \(4, 32, 32, 3\) and \(1, 3\)"),
                        (dict(actions=ids(3), num_samples=3, context_actions=ids(2)), r"must be \(1, 3"),
                        (dict(actions=ids(0)), "at least one"),
                        (dict(context_frames=ctx[:0], actions=ids(3)), "at least one")]:
        with pytest.raises(ValueError, match=message):
            model.generate(**{"context_frames": ctx, **kw})
