"""The Nemotron nano3 recipe: stage scripts (stage*/) and the code they share (common/)."""
