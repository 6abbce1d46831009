// The usage page's tables and number formats: budgets, leases, refusals, prices. Every value from the API
// (scopes, pods, model names are tenant input) becomes a text node (textContent), never markup.
(function () {
  'use strict';

  var U = (window.llmgwUsage = window.llmgwUsage || {});
  var DASH = '\u2014';

  function $(id) {
    return document.getElementById(id);
  }

  /** An element whose only content is `text`, as text. */
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  var intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  function isNum(v) {
    return typeof v === 'number' && isFinite(v);
  }
  function num(v) {
    return isNum(v) ? intFormat.format(v) : DASH;
  }
  function usd(v) {
    if (!isNum(v)) return DASH;
    if (v === 0) return '$0';
    return '$' + (Math.abs(v) >= 1 ? v.toFixed(2) : Number(v.toPrecision(3)).toString());
  }
  function perMillion(v) {
    return isNum(v) ? '$' + Number(v.toFixed(4)).toString() : DASH;
  }
  function amount(v, unit) {
    return unit === 'usd' ? usd(v) : num(v);
  }
  function compact(v) {
    if (!isNum(v)) return '';
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return String(Number(v.toPrecision(3)));
  }
  function utc(ms) {
    return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  }
  function fromNow(ms, now) {
    var s = Math.round((ms - now) / 1000);
    if (s <= 0) return 'now';
    if (s < 120) return 'in ' + s + ' s';
    if (s < 7200) return 'in ' + Math.round(s / 60) + ' min';
    if (s < 172800) return 'in ' + Math.round(s / 3600) + ' h';
    return 'in ' + Math.round(s / 86400) + ' d';
  }

  /** Replaces a table's body: one row per item, cells as text (or a node); `null` rows: the service keeps none. */
  function fillTable(id, rows, cellsOf, emptyText) {
    var table = $(id);
    var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) {
      return th.textContent;
    });
    var width = heads.length;
    var body = document.createDocumentFragment();
    if (rows === null || rows.length === 0) {
      var tr = document.createElement('tr');
      var td = el('td', rows === null ? DASH : emptyText, 'empty');
      td.colSpan = width;
      tr.appendChild(td);
      body.appendChild(tr);
    } else {
      rows.forEach(function (row) {
        var tr = document.createElement('tr');
        cellsOf(row).forEach(function (c, i) {
          var td;
          if (c && c.node) {
            td = document.createElement('td');
            td.appendChild(c.node);
            if (c.cls) td.className = c.cls;
          } else {
            td = el('td', c.text, c.cls);
          }
          // On a phone each row is a card, each cell labelled by its column (CSS attr(), no markup).
          td.setAttribute('data-label', heads[i] || '');
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }
    table.tBodies[0].replaceChildren(body);
  }

  function more(id, n, what) {
    $(id).textContent = n > 0 ? n + ' more ' + what + ' not shown.' : '';
  }

  function useMeter(b) {
    var wrap = document.createElement('span');
    var m = document.createElement('meter');
    m.min = 0;
    m.max = b.limit > 0 ? b.limit : 1;
    m.value = Math.min(m.max, b.used + b.reserved);
    m.low = m.max * 0.8;
    m.high = m.max * 0.95;
    m.optimum = 0;
    var pct = b.limit > 0 ? Math.round(((b.used + b.reserved) * 100) / b.limit) : 0;
    m.title = pct + '% used or reserved';
    wrap.appendChild(m);
    wrap.appendChild(document.createTextNode(' ' + pct + '%'));
    return wrap;
  }

  function renderSummary(s) {
    fillTable(
      'budgets',
      s.budgets.rows,
      function (b) {
        var unit = b.unit || 'tokens';
        return [
          { text: b.scope, cls: 'label' },
          { text: b.window + (unit === 'usd' ? ' (USD)' : '') },
          { text: amount(b.limit, unit), cls: 'num' },
          { text: amount(b.used, unit), cls: 'num' },
          { text: amount(b.reserved, unit), cls: 'num' },
          { text: amount(b.remaining, unit), cls: 'num' },
          { node: useMeter(b) },
          { text: unit === 'usd' ? usd(b.used) : usd(b.usedUsd), cls: 'num' },
          { text: fromNow(b.windowEndMs, s.generatedAtMs) },
        ];
      },
      'No budgets: set one with llmgw budget set.',
    );
    more('budgets-more', s.budgets.more, 'budgets');

    fillTable(
      'leases',
      s.leases.rows,
      function (l) {
        return [
          { text: l.namespace, cls: 'label' },
          { text: l.service || DASH, cls: 'label' },
          { text: l.pod || DASH, cls: 'label' },
          { text: l.priority },
          { text: num(l.tokensHeld), cls: 'num' },
          { text: usd(l.usdHeld), cls: 'num' },
          { text: fromNow(l.expiresAtMs, s.generatedAtMs) },
        ];
      },
      'No live leases.',
    );
    more('leases-more', s.leases.more, 'leases');

    var r = s.refusals;
    fillTable(
      'refusals-priority',
      r ? r.byPriority : null,
      function (p) {
        return [{ text: p.priority }, { text: num(p.count), cls: 'num' }];
      },
      'None.',
    );
    fillTable(
      'refusals-code',
      r ? (r.byCode === undefined ? null : r.byCode) : null,
      function (c) {
        return [{ text: c.method, cls: 'label' }, { text: c.code }, { text: num(c.count), cls: 'num' }];
      },
      'No refused calls.',
    );
    fillTable(
      'refusals-recent',
      r && r.recent !== undefined ? r.recent : null,
      function (x) {
        return [
          { text: utc(x.atMs) },
          { text: x.scope, cls: 'label' },
          { text: x.window },
          { text: x.priority },
          { text: x.reason },
          { text: num(x.need), cls: 'num' },
        ];
      },
      'No recent refusals.',
    );

    var p = s.prices;
    var meta = [];
    if (p && p.asOf) meta.push('as of ' + p.asOf);
    if (p && p.source) meta.push('source: ' + p.source);
    if (p && p.fallback) meta.push('unpriced models: input ' + perMillion(p.fallback.input) + ', output ' + perMillion(p.fallback.output));
    $('prices-meta').textContent = p ? meta.join(' · ') : 'The quota service holds no price table yet.';
    fillTable(
      'prices',
      p ? p.rows : null,
      function (row) {
        return [
          { text: row.provider, cls: 'label' },
          { text: row.model, cls: 'label' },
          { text: perMillion(row.input), cls: 'num' },
          { text: perMillion(row.cachedInput), cls: 'num' },
          { text: perMillion(row.cacheWrite), cls: 'num' },
          { text: perMillion(row.output), cls: 'num' },
          { text: perMillion(row.reasoning), cls: 'num' },
        ];
      },
      'No prices.',
    );
  }

  U.DASH = DASH;
  U.$ = $;
  U.el = el;
  U.num = num;
  U.usd = usd;
  U.compact = compact;
  U.renderSummary = renderSummary;
})();
