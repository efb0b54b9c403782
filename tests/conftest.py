"""Nothing shared by every test: fixtures live beside the tests that use them (api/, e2e/, store/)."""
