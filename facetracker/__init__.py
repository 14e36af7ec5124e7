"""facetracker: collect, label, split, augment, train and run a real-time face tracker."""

__version__ = "0.1.0"
