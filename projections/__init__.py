"""Read models: pure folds over events, their Faust tables and their HTTP views."""
