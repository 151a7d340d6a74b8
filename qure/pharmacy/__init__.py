"""The pharmacy: the medicine catalogue; stock comes with the pharmacy issue."""
