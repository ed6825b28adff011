"""Training the autoencoder and its ridge baselines."""

from giblet.training.data import MovieData, load_movie_data
from giblet.training.stage import TrainingInputs, TrainingSetup, load_model, run_train, save_model
from giblet.training.trainer import TrainConfig, build_model, train

__all__ = ["MovieData", "load_movie_data", "TrainConfig", "build_model", "train", "TrainingInputs", "TrainingSetup",
           "run_train", "save_model", "load_model"]
