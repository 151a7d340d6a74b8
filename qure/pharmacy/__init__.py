"""The pharmacy: the medicine catalogue (SPEC section 7); stock comes with the pharmacy issue."""
