// The sign-in page: whoever used this browser before is gone, and so are the drafts of
// their visits (clinical text must not wait in a shared clinic computer for the next user).
(function () {
  "use strict";
  try {
    var store = window.localStorage;
    for (var i = store.length - 1; i >= 0; i--) {
      var key = store.key(i);
      if (key && key.indexOf("qure.visit-draft.") === 0) {
        store.removeItem(key);
      }
    }
  } catch (e) {
    // storage refused: there are no drafts to clear
  }
})();
