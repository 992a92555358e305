"""The typed responses of the HTTP API: they are what /docs and /openapi.json describe."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Parameters(BaseModel):
    total: int
    trainable: int
    non_trainable: int


class PreprocessingInfo(BaseModel):
    input_shape: list[int] = Field(description="(height, width, channels) the model takes")
    color: str = Field(description="'grayscale' or 'rgb': what uploads are converted to")
    resize: str = Field(description="how uploads are resized to the input shape")
    pixel_range: list[float] = Field(description="the stored min-max scaling: (pixel - min) / (max - min)")
    background: str | None = Field(
        description="'dark' or 'light': the training images' background; uploads and pixels on the other "
        "background are inverted when invert=auto. None: never inverted automatically."
    )
    framing: str = Field(description="'fill', 'fit' or 'none': how uploads are framed when framing=auto (see contract)")
    contract: dict = Field(
        description="the input contract learned from the training images at fit time: polarity, framing, the fit "
        "fraction and centring, the ink threshold, and where it came from (source)"
    )


class Limits(BaseModel):
    max_body_bytes: int
    max_image_pixels: int
    max_batch: int


class ModelInfo(BaseModel):
    name: str
    run: str | None
    class_names: list[str]
    input_shape: list[int]
    parameters: Parameters
    test_accuracy: float | None = Field(description="accuracy on the run's held-out test split, when it was evaluated")
    summary: dict = Field(description="every layer: output shape, parameters, FLOPs, receptive field")
    summary_text: str = Field(description="the same summary as `convscope summary` prints it")
    preprocessing: PreprocessingInfo
    limits: Limits
    engine: str = Field(
        description="what runs the forward pass: torch, onnxruntime or openvino (convscope serve --engine)"
    )
    batch_worker: str = Field(
        description="where images are decoded and batches run: 'process' (beside the server's, on other cores) "
        "or 'thread' (in the server's process) (convscope serve --batch-worker)"
    )


class TopClass(BaseModel):
    label: str
    index: int
    probability: float


class Prediction(BaseModel):
    label: str = Field(description="the most probable class")
    index: int = Field(description="its position in class_names")
    probabilities: list[float] = Field(
        description="one per class, in class order (GET /model lists the classes); sums to 1"
    )
    top: list[TopClass] = Field(description="the top_k classes, most probable first")
    inverted: bool = Field(
        description="whether the image was inverted (dark-on-light -> light-on-dark) before predicting"
    )
    framing: str = Field(description="the framing applied: 'fill', 'fit', or 'none' (resized whole, or no ink found)")
    warnings: list[str] = Field(
        default_factory=list,
        description="why the answer may be wrong although the image was accepted, e.g. JSON pixels that span only "
        "a sliver of the training data's range (0..1 sent to a model trained on 0..255); empty when none",
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class LayerMaps(BaseModel):
    name: str
    type: str
    shape: list[int] = Field(description="the layer's output (height, width, channels)")
    tiles: list[str] = Field(description="one grayscale PNG per channel (data: URLs), each scaled to its own min..max")
    ranges: list[list[float]] = Field(
        description="each tile's (min, max) activation, so nothing is hidden by the scaling"
    )


class FeatureMaps(BaseModel):
    prediction: Prediction
    input: str = Field(description="the image the model saw after preprocessing, as a PNG data: URL")
    layers: list[LayerMaps]


class Error(BaseModel):
    error: str = Field(description="one sentence: what was wrong and what is expected")
