"""What is kept: the result store, weights files, run folders, the frames and machine a run records."""
