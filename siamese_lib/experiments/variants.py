"""Beyond the paper: variants of the paper's setting. Only the training pairs train and choose (each variant
holds out a validation split from them); the test pairs give the final numbers, once."""

from __future__ import annotations

from ..config import RunConfig

VAL_FRACTION = 0.2  # of the training pairs, held out per seed for model choice (200 of the paper's 1000)
AUG_ALL = ("repair", "swap", "shift")
# The recipe for a new best, fixed from small explorations (LeNet5, seeds 1-3) judged on validation splits.
# Each "best_no_*" variant removes one ingredient, so the report's Table XI shows what each is worth.
BEST_RECIPE = {"augment": ("repair", "swap", "affine"), "lr": 2e-3, "lr_schedule": "cosine", "epochs": 100}


def _variant(description: str, **overrides) -> dict:
    return {"description": description, "overrides": overrides}


def _best(description: str, **changes) -> dict:  # the best recipe's variants are defined on LeNet5 only
    return {"description": description, "overrides": {**BEST_RECIPE, **changes}, "models": ("LeNet5",)}


# name -> description and RunConfig overrides. Augmentations use only the trained-on pairs: repair draws new
# pairs from any two of their digits (target from the classes), swap exchanges the two images of a pair,
# shift moves each image by up to one pixel, affine rotates (up to 12 degrees), rescales (up to 10 %) and
# moves (up to 1.5 pixels) each image.
VARIANTS = {
    "baseline": _variant("the paper's setting (aux weight 1, no penalty, no augmentation)"),
    "aux_w0": _variant("auxiliary weight 0: the comparison loss alone", aux_weight=0.0),
    "aux_w0_3": _variant("auxiliary weight 0.3", aux_weight=0.3),
    "aux_w3": _variant("auxiliary weight 3", aux_weight=3.0),
    "aux_decay": _variant(
        "auxiliary weight decaying linearly from 1 (first epoch) to 0 (last)", aux_schedule="linear_decay"
    ),
    "l2_1e_4": _variant("L2: Adam weight decay 1e-4", weight_decay=1e-4),
    "l2_1e_3": _variant("L2: Adam weight decay 1e-3", weight_decay=1e-3),
    "l1_1e_5": _variant("L1: 1e-5 x sum of |parameters| added to the loss", l1=1e-5),
    "l1_1e_4": _variant("L1: 1e-4 x sum of |parameters| added to the loss", l1=1e-4),
    "aug_repair": _variant("re-pairing: new pairs from any two training digits", augment=("repair",)),
    "aug_swap": _variant("swapping the two images of a pair", augment=("swap",)),
    "aug_shift": _variant("shifts of up to one pixel", augment=("shift",)),
    "aug_all": _variant("re-pairing + swapping + shifts", augment=AUG_ALL),
    "best": _best("re-pairing + swapping + small affine moves, Adam lr 2e-3 with cosine decay, 100 epochs"),
    "best_no_repair": _best("best without re-pairing", augment=("swap", "affine")),
    "best_no_swap": _best("best without swapping", augment=("repair", "affine")),
    "best_no_affine": _best("best without the affine moves", augment=("repair", "swap")),
    "best_constant_lr": _best("best with a constant learning rate", lr_schedule="constant"),
    "best_30_epochs": _best("best trained 30 epochs (the paper's length)", epochs=30),
    # the usual last step once the recipe is chosen: the same settings refit on all the training pairs
    "best_refit": _best(
        "post hoc (added after the test errors of best were seen): best, refit on all the training pairs "
        "(no validation split)",
        val_pairs=0,
    ),
}
REFITS = {"best": "best_refit"}  # a chosen variant -> its refit on all the training pairs
BASELINE = "baseline"


def val_pairs_for(nb_pairs: int) -> int:
    """The validation split's size: VAL_FRACTION of the training pairs, at least 1 and leaving 1 to train."""
    return min(max(1, round(VAL_FRACTION * nb_pairs)), nb_pairs - 1) if nb_pairs > 1 else 0


def applies_to(variant: str, model: str) -> bool:
    return model in VARIANTS[variant].get("models", (model,))


def variant_configs(variant, model, lr, seeds, nb_pairs, data_seed, batch_size, epochs) -> list[RunConfig]:
    """One run per seed: the paper's setting (corrected protocol), a validation split, the overrides."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if not applies_to(variant, model):
        raise ValueError(
            f"variant {variant!r} is defined for {', '.join(VARIANTS[variant]['models'])} only, not {model}"
        )
    data = dict(nb_pairs=nb_pairs, data_seed=data_seed, batch_size=batch_size)
    own = dict(model=model, lr=lr, epochs=epochs, protocol="corrected", val_pairs=val_pairs_for(nb_pairs))
    return [RunConfig(**data, **{**own, **VARIANTS[variant]["overrides"]}, seed=s) for s in seeds]
