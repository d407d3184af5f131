/* dlbook search: a page whose title contains every word searched for comes before pages that only have a section
   about it (Sphinx ranks both alike and then sorts by name, so "stride" listed the Stride chapter fourth). */
var Scorer = {
  score: function (result) {
    var title = (result[1] || "").split(" > ")[0].toLowerCase();
    var words = (new URLSearchParams(window.location.search).get("q") || "").toLowerCase().split(/\s+/)
      .filter(function (w) { return w.length > 0; });
    var inTitle = words.length > 0 && words.every(function (w) { return title.indexOf(w) >= 0; });
    return result[4] + (inTitle ? 20 : 0);
  },
  // Sphinx's defaults for everything else
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: { 0: 15, 1: 5, 2: -5 },
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
