from __future__ import annotations

import numpy as np
import pytest
import torch

from labelaudit.errors import LabelAuditError
from labelaudit.scorers import ScoreContext, deft_train, get_scorer
from labelaudit.scorers.deft import DeftSettings

from .conftest import synthetic_embeddings


def test_clip_soft_prompt_with_zero_context_reproduces_encode_text(tiny_encoder) -> None:
    soft = tiny_encoder.soft_prompt_model()
    names = ["cat", "golden retriever", "aircraft carrier"]
    ours = soft.encode(torch.zeros((0, soft.width)), names)
    reference = tiny_encoder.encode_texts([f"{n}." for n in names])
    np.testing.assert_allclose(ours.detach().numpy(), reference, atol=1e-5)


def test_clip_soft_prompt_with_template_context_reproduces_the_template(tiny_encoder) -> None:
    soft = tiny_encoder.soft_prompt_model()
    context = soft.token_embeddings("a photo of a")
    ours = soft.encode(context, ["dog", "sea turtle"])
    reference = tiny_encoder.encode_texts(["a photo of a dog.", "a photo of a sea turtle."])
    np.testing.assert_allclose(ours.detach().numpy(), reference, atol=1e-5)


def test_bert_soft_prompt_with_zero_context_reproduces_sentence_transformers(minilm_encoder) -> None:
    soft = minilm_encoder.soft_prompt_model()
    names = ["sports", "machine learning", "cooking"]
    ours = soft.encode(torch.zeros((0, soft.width)), names)
    np.testing.assert_allclose(ours.detach().numpy(), minilm_encoder.encode_texts(names), atol=1e-5)
    with_template = soft.encode(soft.token_embeddings("This text is about"), ["space"])
    np.testing.assert_allclose(
        with_template.detach().numpy(), minilm_encoder.encode_texts(["This text is about space"]), atol=1e-5
    )


def test_soft_prompt_gradients_reach_only_the_context(tiny_encoder) -> None:
    soft = tiny_encoder.soft_prompt_model()
    context = torch.nn.Parameter(0.02 * torch.randn(4, soft.width))
    soft.encode(context, ["a", "b"]).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_encoder.model.parameters())


def test_prompt_variant_trains_through_the_text_tower(tiny_encoder) -> None:
    x, given, true, _ = synthetic_embeddings(n=300, k=3, dim=32, noise_rate=0.1)
    context = ScoreContext(
        embeddings=x,
        labels=given,
        class_names=["red", "green", "blue"],
        soft_prompt=tiny_encoder.soft_prompt_model(),
    )
    result = get_scorer("deft").score(context, DeftSettings(variant="prompt", epochs=2, n_ctx=4, batch_size=100))
    assert result.settings["variant"] == "prompt"
    assert result.quality.shape == (300,)
    assert np.isfinite(result.quality).all()


def test_cross_fitting_never_scores_a_sample_with_prompts_that_trained_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    x, given, true, centres = synthetic_embeddings(n=400, noise_rate=0.1)
    trained_on: list[set[int]] = []
    scored: list[set[int]] = []
    real_train, real_score = deft_train.train_deft, deft_train.score_with

    def spy_train(context, settings, variant, train_index, seed, task=None):
        trained_on.append(set(train_index.tolist()))
        return real_train(context, settings, variant, train_index, seed, task)

    def spy_score(prompts, context, settings, index):
        scored.append(set(index.tolist()))
        return real_score(prompts, context, settings, index)

    monkeypatch.setattr(deft_train, "train_deft", spy_train)
    monkeypatch.setattr(deft_train, "score_with", spy_score)
    context = ScoreContext(
        embeddings=x,
        labels=given,
        class_names=[f"c{i}" for i in range(5)],
        class_embeddings=centres,
    )
    result = get_scorer("deft").score(context, DeftSettings(folds=4, epochs=2))

    assert len(trained_on) == len(scored) == 4
    for train, held_out in zip(trained_on, scored, strict=True):
        assert not train & held_out
    assert set().union(*scored) == set(range(400))
    assert result.settings["folds"] == 4


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DeftSettings(variant="prompt", n_ctx=0), "--deft-ctx must be at least 1 context"),
        (DeftSettings(epochs=0), "--deft-epochs must be at least 1"),
        (DeftSettings(variant="sideways"), "embedding, prompt or auto"),
        (DeftSettings(lr=-1.0), "--deft-lr must be positive"),
        (DeftSettings(folds=0), "--deft-folds must be 1"),
    ],
)
def test_bad_settings_are_clear_errors(settings: DeftSettings, message: str) -> None:
    x, given, _, centres = synthetic_embeddings(n=50)
    names = [f"c{i}" for i in range(5)]
    context = ScoreContext(embeddings=x, labels=given, class_names=names, class_embeddings=centres)
    with pytest.raises(LabelAuditError, match=message):
        settings.check()
    with pytest.raises(LabelAuditError, match=message):
        get_scorer("deft").score(context, settings)


def test_one_class_is_a_clear_error() -> None:
    x, _, _, _ = synthetic_embeddings(n=20)
    context = ScoreContext(embeddings=x, labels=np.zeros(20, dtype=int), class_names=["only"])
    with pytest.raises(LabelAuditError, match="two classes"):
        get_scorer("deft").score(context)


def test_prompt_variant_without_a_soft_prompt_tower_says_what_to_do() -> None:
    x, given, _, centres = synthetic_embeddings(n=50)
    context = ScoreContext(
        embeddings=x,
        labels=given,
        class_names=[f"c{i}" for i in range(5)],
        class_embeddings=centres,
    )
    with pytest.raises(LabelAuditError, match="--deft-variant embedding"):
        get_scorer("deft").score(context, DeftSettings(variant="prompt"))
