"""The post-tuning routine on the tiny pipeline: outputs, fairness record and bit-for-bit resume."""

from __future__ import annotations

import csv
import json
import types
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from variants import ExSVDUNet, get_variant
from variants.posttune import EncodedClips, TuneConfig, post_tune, synthetic_clips
from variants.tiny import tiny_pipeline

FRAMES, SIZE = 10, 64
WEIGHTS = "diffusion_pytorch_model.safetensors"
OUTPUTS = (f"unet/{WEIGHTS}", f"unet_ema/{WEIGHTS}", "loss.csv", "training.json")
CONFIG = TuneConfig(steps=4, frames=FRAMES, lr=1e-3, seed=3, checkpoint_every=2, ema_decay=0.5)
pytestmark = pytest.mark.usefixtures("repeatable")  # on a GPU too (.ci/device-check)


@pytest.fixture(scope="module")
def base():
    return tiny_pipeline(seed=0)


def arm_unet(base, arm="exsvd"):
    return get_variant(arm).build(base.unet, base_length=8, table_size=32, bounce_low=2)


def trainable_state(unet):
    return {n: p.detach().cpu().clone() for n, p in unet.named_parameters() if p.requires_grad}


def test_post_tune_writes_the_arm_its_ema_loss_curve_and_record(base, tmp_path):
    unet = arm_unet(base)
    frozen = {n: p.detach().clone() for n, p in unet.named_parameters()}
    post_tune(unet, base, synthetic_clips(FRAMES, SIZE, 1), CONFIG, tmp_path, progress=False)
    for name, param in unet.named_parameters():
        assert torch.equal(frozen[name], param.detach().cpu()) != param.requires_grad, name
    tuned = ExSVDUNet.from_pretrained(tmp_path / "unet")
    ema = ExSVDUNet.from_pretrained(tmp_path / "unet_ema")
    for name, param in unet.named_parameters():
        torch.testing.assert_close(dict(tuned.named_parameters())[name], param.detach().cpu())
    assert any(not torch.equal(dict(ema.named_parameters())[n], p.detach().cpu()) for n, p in
               unet.named_parameters() if p.requires_grad)
    rows = list(csv.DictReader((tmp_path / "loss.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows)
    record = json.loads((tmp_path / "training.json").read_text())
    assert record["config"]["seed"] == 3 and record["config"]["lr"] == 1e-3
    assert record["config"]["objective"]["p_mean"] == 0.7
    assert record["config"]["objective"]["loss_weight"] == "exvideo"
    assert record["parameters"]["trainable"] > 0 and record["steps_done"] == 4


def test_resume_continues_bit_for_bit(base, tmp_path):
    clips = synthetic_clips(FRAMES, SIZE, 1)
    straight = arm_unet(base)
    post_tune(straight, base, clips, CONFIG, tmp_path / "straight", progress=False)
    interrupted = arm_unet(base)
    post_tune(interrupted, base, clips, CONFIG, tmp_path / "resumed", stop_after=2,
              progress=False)
    resumed = arm_unet(base)  # a fresh process: weights back at the arm's init
    post_tune(resumed, base, clips, CONFIG, tmp_path / "resumed", resume=True, progress=False)
    for name, value in trainable_state(straight).items():
        assert torch.equal(value, trainable_state(resumed)[name]), name
    for output in OUTPUTS:
        assert (tmp_path / "straight" / output).read_bytes() == (
            tmp_path / "resumed" / output).read_bytes(), output


def test_deterministic_kernels_train_the_steps_and_a_resume_may_switch_them(base, tmp_path):
    """``deterministic``: the steps run under fixed-order kernels (variants.repeatable), the
    setting is as before afterwards, and a checkpoint resumes with it switched (same maths)."""
    from dataclasses import replace

    plain, seen = synthetic_clips(FRAMES, SIZE, 1), []

    def clips(step, generator):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return plain(step, generator)

    before = torch.are_deterministic_algorithms_enabled()  # True on a GPU (``repeatable``)
    straight = arm_unet(base)
    post_tune(straight, base, plain, CONFIG, tmp_path / "straight", progress=False)
    post_tune(arm_unet(base), base, clips, replace(CONFIG, deterministic=True), tmp_path / "det",
              stop_after=2, progress=False)
    assert torch.are_deterministic_algorithms_enabled() == before
    resumed = arm_unet(base)
    post_tune(resumed, base, clips, CONFIG, tmp_path / "det", resume=True, progress=False)
    assert seen == [True, True, before, before]
    for name, value in trainable_state(straight).items():
        assert torch.equal(value, trainable_state(resumed)[name]), name


def test_an_ignored_ctrl_c_stays_ignored_while_post_tuning():
    """A script's background job (``command &``) starts with SIGINT ignored: post-tuning
    leaves it so, rather than making the job stoppable by it for a while."""
    import os
    import signal

    from variants.tune_checkpoint import interrupt_at_step_end

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupt_at_step_end() as interrupt:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert not interrupt.requested
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_step_under_way_with_its_checkpoint(base, tmp_path):
    """Interrupted mid-step, a run finishes that step, checkpoints it (not only every
    checkpoint_every steps) and stops; its resume equals the straight run."""
    import os
    import signal
    from dataclasses import replace

    plain, config = synthetic_clips(FRAMES, SIZE, 1), replace(CONFIG, checkpoint_every=50)

    def clips(step, generator):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # while the third step draws its clips
        return plain(step, generator)

    straight = arm_unet(base)
    post_tune(straight, base, plain, config, tmp_path / "straight", progress=False)
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a foreground job's, whatever
    try:  # this runner inherited (a background job ignores SIGINT)
        with pytest.raises(KeyboardInterrupt):
            post_tune(arm_unet(base), base, clips, config, tmp_path / "stopped", progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, handler)
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["step"] == 3
    assert not (tmp_path / "stopped" / "unet").exists()
    resumed = arm_unet(base)
    post_tune(resumed, base, plain, config, tmp_path / "stopped", resume=True, progress=False)
    for name, value in trainable_state(straight).items():
        assert torch.equal(value, trainable_state(resumed)[name]), name


def test_a_checkpoint_of_another_arm_or_settings_is_refused(base, tmp_path):
    from dataclasses import replace

    from metrics.errors import BenchError

    clips = synthetic_clips(FRAMES, SIZE, 1)
    post_tune(arm_unet(base, "exsvd-static-pe"), base, clips, CONFIG, tmp_path, stop_after=2,
              progress=False)
    with pytest.raises(BenchError, match=r"another arm or other settings \(arm differ"):
        post_tune(arm_unet(base, "exsvd-cyclic-pe"), base, clips, CONFIG, tmp_path, resume=True,
                  progress=False)
    with pytest.raises(BenchError, match=r"config.lr, config.seed differ"):
        post_tune(arm_unet(base, "exsvd-static-pe"), base, clips,
                  replace(CONFIG, lr=5e-2, seed=99), tmp_path, resume=True, progress=False)
    assert not (tmp_path / "training.json").exists()  # nothing was trained on the mix
    post_tune(arm_unet(base, "exsvd-static-pe"), base, clips, replace(CONFIG, checkpointing="full"),
              tmp_path, resume=True, progress=False)  # recomputing the same maths: resumes
    assert json.loads((tmp_path / "training.json").read_text())["steps_done"] == CONFIG.steps


def test_every_arm_draws_the_same_clips_with_the_same_noise(base, tmp_path):
    from dataclasses import replace

    plain, drawn = synthetic_clips(FRAMES, SIZE, 1), {}

    def recorded(arm):
        def clips(step, generator):  # the generator then draws the step's training noise
            state = generator.get_state().clone()
            batch = plain(step, generator)
            drawn.setdefault(arm, []).append((step, state, batch))
            return batch

        return clips

    for arm in ("exsvd", "exsvd-cyclic-pe"):
        post_tune(arm_unet(base, arm), base, recorded(arm), replace(CONFIG, steps=2),
                  tmp_path / arm, progress=False)
    first, second = drawn.values()
    assert [step for step, *_ in first] == [0, 1]
    for (step, state, clips), theirs in zip(first, second, strict=True):
        assert step == theirs[0] and torch.equal(state, theirs[1]) and (clips == theirs[2]).all()
    assert not (first[0][2] == first[1][2]).all()  # each step its own clips


def test_arms_sharing_encoded_clips_encode_each_step_once_and_train_as_alone(base, tmp_path):
    from dataclasses import replace

    plain, rendered = synthetic_clips(FRAMES, SIZE, 1), []

    def counted(step, generator):
        rendered.append(step)
        return plain(step, generator)

    config = replace(CONFIG, grad_accumulation=2)  # two draws per step, kept apart
    shared = EncodedClips(counted, runs=2)
    for arm in ("exsvd", "exsvd-static-pe"):
        alone, together = arm_unet(base, arm), arm_unet(base, arm)
        post_tune(alone, base, plain, config, tmp_path / arm / "alone", progress=False)
        post_tune(together, base, shared, config, tmp_path / arm / "shared", progress=False)
        for name, value in trainable_state(alone).items():
            assert torch.equal(value, trainable_state(together)[name]), (arm, name)
        losses = [(tmp_path / arm / d / "loss.csv").read_text() for d in ("alone", "shared")]
        assert losses[0] == losses[1]
    assert rendered == [0, 0, 1, 1, 2, 2, 3, 3]  # by the first arm only
    assert shared.kept_bytes == 0  # the last of the two runs took what was kept


def test_encoded_clips_keep_up_to_their_budget_and_serve_one_pipeline(base, tmp_path,
                                                                      monkeypatch):
    import psutil

    rendered = []

    def counted(step, generator):
        rendered.append(step)
        return synthetic_clips(FRAMES, SIZE, 1)(step, generator)

    one_batch, only_run = EncodedClips(counted), EncodedClips(counted, runs=1)
    for source, out in ((one_batch, "a"), (only_run, "a1")):
        post_tune(arm_unet(base), base, source, CONFIG, tmp_path / out, stop_after=1,
                  progress=False)
    assert one_batch.kept_bytes > 0 and only_run.kept_bytes == 0  # no later run to read it
    (batch, after), = one_batch._kept.values()  # the batch and the generator state after it
    tensors = (batch.latents, batch.condition_latent, batch.image_embeds, batch.added_time_ids)
    assert one_batch.kept_bytes == sum(t.nbytes for t in tensors) + after.nbytes
    # by default a quarter of the RAM available: here room for step 0 only
    available = types.SimpleNamespace(available=4 * one_batch.kept_bytes + 3)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: available)
    shared = EncodedClips(counted)
    rendered.clear()
    for out in ("b", "c"):
        post_tune(arm_unet(base), base, shared, CONFIG, tmp_path / out, progress=False)
    assert rendered == [0, 1, 2, 3, 1, 2, 3]
    assert shared.kept_bytes == one_batch.kept_bytes
    with pytest.raises(ValueError, match="one pipeline's encoders"):
        post_tune(arm_unet(base), tiny_pipeline(seed=0), shared, CONFIG, tmp_path / "d",
                  progress=False)


def test_gradient_accumulation_and_checkpointing_run(base, tmp_path):
    from dataclasses import replace

    unet = arm_unet(base, "exsvd-cyclic-pe")
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    config = replace(CONFIG, steps=1, grad_accumulation=2, checkpointing="stock")
    post_tune(unet, base, synthetic_clips(FRAMES, SIZE, 1), config, tmp_path, progress=False)
    after = trainable_state(unet)
    assert after and all(not torch.equal(before[n], after[n]) for n in after)
    assert unet.is_gradient_checkpointing
    assert float((tmp_path / "loss.csv").read_text().splitlines()[1].split(",")[1]) > 0


def test_checkpointing_whole_temporal_transformers_trains_the_same_weights(base, tmp_path):
    """Checkpointing whole temporal transformers recomputes, it does not change the maths."""
    from dataclasses import replace

    clips = synthetic_clips(FRAMES, SIZE, 1)
    trained = {}
    for mode in ("none", "full"):
        unet = arm_unet(base)
        config = replace(CONFIG, steps=2, checkpointing=mode)
        post_tune(unet, base, clips, config, tmp_path / mode, progress=False)
        trained[mode] = trainable_state(unet)
    for name, value in trained["none"].items():
        torch.testing.assert_close(trained["full"][name], value, atol=1e-6, rtol=1e-5)


def test_a_checkpoint_that_cannot_resume_says_why_in_one_line(tmp_path):
    from metrics.errors import BenchError
    from variants.tune_checkpoint import load_checkpoint, not_resumable

    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"PK\x03\x04 cut short")  # a torch zip that ends early
    with pytest.raises(BenchError, match=r"checkpoint.pt: cannot be read .*delete it"):
        load_checkpoint(broken, None, [], None, [], None, {})
    made_by = {"config": asdict(CONFIG), "arm": {}, "trainable": [], "launch": {}}
    longer = {**made_by, "config": {**made_by["config"], "steps": 8}}
    saved = {"made_by": json.dumps(made_by), "step": 2}
    assert not_resumable(saved, longer) is None  # more steps at a constant learning rate
    decayed = {**made_by, "config": {**longer["config"], "cosine": True}}
    saved = {"made_by": json.dumps({**made_by, "config": {**made_by["config"], "cosine": True}}),
             "step": 2}
    assert "config.steps, which the cosine schedule spans" in not_resumable(saved, decayed)


@pytest.mark.usefixtures("fresh_accelerator")  # it switches to bf16 mixed precision
def test_frozen_weights_in_bf16_train_the_fp32_masters_of_the_arm(base, tmp_path):
    """Frozen weights in bf16 (under bf16 autocast) train the fp32 master weights of the arm;
    the memory levers need their mixed precision."""
    from dataclasses import replace

    from metrics.errors import BenchError

    clips = synthetic_clips(FRAMES, SIZE, 1)
    lean = arm_unet(base)
    config = replace(CONFIG, steps=1, checkpointing="full", frozen_dtype="bfloat16",
                     mixed_precision="bf16", fused_adamw=True)
    post_tune(lean, base, clips, config, tmp_path / "lean", progress=False)
    dtypes = {p.requires_grad: p.dtype for p in lean.parameters()}
    assert dtypes == {True: torch.float32, False: torch.bfloat16}
    stock = arm_unet(base).state_dict()  # the frozen weights are saved as they were
    for folder in ("unet", "unet_ema"):
        saved = load_file(tmp_path / "lean" / folder / WEIGHTS)
        assert {t.dtype for t in saved.values()} == {torch.float32}
        for name, param in lean.named_parameters():
            if not param.requires_grad:
                assert torch.equal(saved[name], stock[name]), name
            elif folder == "unet":
                assert torch.equal(saved[name], param.detach().cpu()), name
    assert float((tmp_path / "lean" / "loss.csv").read_text().splitlines()[1].split(",")[1]) > 0
    with pytest.raises(BenchError, match="frozen_dtype bfloat16 needs mixed_precision 'bf16'"):
        replace(CONFIG, frozen_dtype="bfloat16")
    with pytest.raises(BenchError, match="checkpointing 'all' is not one of"):
        replace(CONFIG, checkpointing="all")


def test_learning_rate_schedule_warm_up_then_constant_or_cosine():
    from variants.posttune import learning_rate

    constant = TuneConfig(steps=100, frames=8, lr=1e-3)
    assert {learning_rate(constant, s) for s in range(100)} == {1e-3}  # ExVideo's default
    cosine = TuneConfig(steps=100, frames=8, lr=1e-3, warmup_steps=10, cosine=True)
    warm = [learning_rate(cosine, s) for s in range(10)]
    assert warm == sorted(warm) and warm[0] == pytest.approx(1e-4)
    assert learning_rate(cosine, 10) == pytest.approx(1e-3)
    decay = [learning_rate(cosine, s) for s in range(10, 100)]
    assert decay == sorted(decay, reverse=True) and decay[-1] < 1e-5


def test_an_op_without_a_deterministic_kernel_is_a_one_line_error():
    """On a GPU some ops have none (CUDA's reflection-pad backward, which the identity convs
    avoid); torch's error becomes one line naming the op and the setting."""
    from metrics.errors import BenchError
    from variants.repeatable import deterministic_kernels

    before = torch.are_deterministic_algorithms_enabled()
    expected = r"^tune.deterministic: some_op_cuda has no determ"
    with pytest.raises(BenchError, match=expected) as e, deterministic_kernels():
        raise RuntimeError("some_op_cuda does not have a deterministic implementation, but "
                           "you set 'torch.use_deterministic_algorithms(True)'. ...")
    assert "\n" not in str(e.value) and torch.are_deterministic_algorithms_enabled() == before
    with pytest.raises(RuntimeError, match="other"), deterministic_kernels():
        raise RuntimeError("other")
