"""The API's model check at run creation (issue 23 asks for one check shared by every entry point; until then
this is the API's, named so that merging it into that one is a one-line change): the model must be one the
workflow offers now — a connected provider's model its policy allows, or the offline demo — else 422."""

from __future__ import annotations

from typing import Any

from providers.resolution import ModelNotAvailable, model_choices, split_model


def require_offered_model(spec: dict[str, Any], model: str) -> None:
    split_model(model)  # the name's shape first: nothing is looked up for a malformed one
    offered = [choice.name for choice in model_choices(spec)]
    if model not in offered:
        raise ModelNotAvailable(f"'{model}' is not offered for this workflow now. Offered: {', '.join(offered)}.")
