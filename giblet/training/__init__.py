"""Training the autoencoder and its ridge baselines."""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "data": ["MovieData", "load_movie_data"],
    "stage": ["TrainingInputs", "TrainingSetup", "load_model", "run_train", "save_model"],
    "trainer": ["TrainConfig", "build_model", "train"],
})
