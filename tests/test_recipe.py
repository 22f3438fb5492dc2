"""Tests of pipeline/network/recipe.py: the training recipe and what a member's key holds."""

from __future__ import annotations

import json
from dataclasses import replace

from pipeline.network.model import ModelConfig
from pipeline.network.recipe import TrainConfig, recipe_of


def test_the_config_round_trips_through_json():
    config = TrainConfig(model=ModelConfig(channels=(4, 8)), epochs=3, members=5, seed=9)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_runs_saved_before_gradient_clipping_read_as_unclipped():
    saved = TrainConfig().to_dict()
    del saved["grad_clip"]
    assert TrainConfig.from_dict(saved).grad_clip == 0.0


def test_the_member_count_is_not_part_of_a_members_key_but_every_other_setting_is():
    base = TrainConfig()
    assert replace(base, members=7).member_key() == base.member_key()
    for change in ({"epochs": 3}, {"seed": 1}, {"lr": 1e-3},
                   {"model": ModelConfig(hidden=64)}):
        assert replace(base, **change).member_key() != base.member_key()


def test_the_recipe_leaves_out_only_the_seed_and_the_member_count():
    saved = TrainConfig(seed=4, members=3).to_dict()
    recipe = recipe_of(saved)
    assert set(saved) - set(recipe) == {"seed", "members"}
    assert recipe == recipe_of(TrainConfig(seed=0, members=1).to_dict())
    assert recipe != recipe_of(TrainConfig(epochs=5).to_dict())
