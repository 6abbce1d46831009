// The usage page's script: reads the JSON API under ui/api/ every 5 s and hands the answers to the tables
// (usage-tables.js) and charts (usage-charts.js). The credential is asked for once and kept in
// sessionStorage, for this tab only.
(function () {
  'use strict';

  var U = window.llmgwUsage;
  var $ = U.$;
  var TOKEN_KEY = 'llmgw.ui.token';
  var REFRESH_MS = 5000;
  var GROUPS = ['team', 'namespace', 'model', 'tag'];

  var state = { token: '', timer: 0, busy: false, last: null, waitingForToken: false };
  try {
    state.token = sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (e) {
    state.token = '';
  }

  function setStatus(text, isError) {
    var s = $('status');
    s.textContent = text;
    s.className = isError ? 'status error' : 'status';
  }

  function AuthError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(path) {
    var headers = { accept: 'application/json' };
    if (state.token) headers.authorization = 'Bearer ' + state.token;
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit' }).then(function (res) {
      return res.json().then(
        function (body) {
          return { res: res, body: body };
        },
        function () {
          return { res: res, body: null };
        },
      ).then(function (r) {
        var why = r.body && typeof r.body.error === 'string' ? r.body.error : r.res.statusText;
        if (r.res.status === 401 || r.res.status === 403) throw new AuthError(r.res.status, why);
        if (!r.res.ok) throw new Error(r.res.status + ' ' + why);
        return r.body;
      });
    });
  }

  function renderAll() {
    if (!state.last) return;
    var unit = $('unit').value;
    U.renderSummary(state.last.summary);
    GROUPS.forEach(function (g, i) {
      U.renderChart(g, state.last.charts[i], unit);
    });
  }

  // Credential -----------------------------------------------------------------------------------------

  function showLogin(err) {
    state.waitingForToken = true;
    $('login-reason').textContent =
      err.status === 403
        ? 'This credential may not read usage: ' + err.message
        : state.token
          ? 'The quota service refused this credential: ' + err.message
          : 'The quota service asks for a credential to show usage.';
    $('login').hidden = false;
    $('content').hidden = true;
    setStatus(err.status === 403 ? 'forbidden (403)' : 'credential needed (401)', true);
    $('login-token').focus();
  }

  function hideLogin() {
    state.waitingForToken = false;
    $('login').hidden = true;
    $('content').hidden = false;
    $('sign-out').hidden = !state.token;
  }

  function setToken(token) {
    state.token = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* storage refused (private mode): the token lasts as long as the page */
    }
  }

  // Refresh --------------------------------------------------------------------------------------------

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, ms);
  }

  function refresh() {
    if (state.busy) return;
    if (document.hidden) return schedule(REFRESH_MS);
    state.busy = true;
    var range = encodeURIComponent($('range').value);
    var tag = encodeURIComponent($('tag-key').value.trim() || 'team');
    // The summary first: without a valid credential that is the one refused call.
    api('ui/api/summary')
      .then(function (summary) {
        var charts = GROUPS.map(function (g) {
          return api('ui/api/series?group=' + g + '&range=' + range + (g === 'tag' ? '&tag=' + tag : '')).catch(function (e) {
            if (e instanceof AuthError) throw e;
            return { error: e.message };
          });
        });
        return Promise.all([summary].concat(charts));
      })
      .then(function (all) {
        hideLogin();
        state.last = { summary: all[0], charts: all.slice(1) };
        renderAll();
        setStatus('Updated ' + new Date(all[0].generatedAtMs).toLocaleTimeString() + ' · refreshes every ' + REFRESH_MS / 1000 + ' s', false);
        document.body.setAttribute('data-updated', String(all[0].generatedAtMs));
      })
      .catch(function (e) {
        if (e instanceof AuthError) return showLogin(e);
        setStatus('Cannot reach the quota service: ' + e.message + ' (retrying)', true);
      })
      .then(function () {
        state.busy = false;
        if (!state.waitingForToken) schedule(REFRESH_MS);
      });
  }

  // The controls' values outlive a reload of the tab.
  var CONTROLS_KEY = 'llmgw.ui.controls';
  var CONTROLS = ['range', 'unit', 'tag-key'];

  function restoreControls() {
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(CONTROLS_KEY) || 'null');
    } catch (e) {
      saved = null;
    }
    if (!saved || typeof saved !== 'object') return;
    CONTROLS.forEach(function (id) {
      var v = saved[id];
      if (typeof v !== 'string') return;
      var c = $(id);
      if (c.tagName === 'SELECT' && !Array.prototype.some.call(c.options, function (o) { return o.value === v; })) return;
      c.value = v.slice(0, 64);
    });
  }

  function saveControls() {
    var saved = {};
    CONTROLS.forEach(function (id) {
      saved[id] = $(id).value;
    });
    try {
      sessionStorage.setItem(CONTROLS_KEY, JSON.stringify(saved));
    } catch (e) {
      /* not kept */
    }
  }

  function start() {
    restoreControls();
    CONTROLS.forEach(function (id) {
      $(id).addEventListener('change', saveControls);
    });
    $('controls').addEventListener('submit', function (e) {
      e.preventDefault();
      saveControls();
      refresh();
    });
    $('range').addEventListener('change', refresh);
    $('tag-key').addEventListener('change', refresh);
    $('unit').addEventListener('change', renderAll);
    $('login-form').addEventListener('submit', function (e) {
      e.preventDefault();
      setToken($('login-token').value.trim());
      $('login-token').value = '';
      refresh();
    });
    $('sign-out').addEventListener('click', function () {
      setToken('');
      U.dropCharts();
      state.last = null;
      refresh();
    });
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden && !state.waitingForToken) refresh();
    });
    if (typeof ResizeObserver === 'function') new ResizeObserver(U.resizeCharts).observe($('content'));
    else window.addEventListener('resize', U.resizeCharts);
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
