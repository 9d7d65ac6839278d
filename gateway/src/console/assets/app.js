// The console: one page whose script renders what the address names, through the node's own
// Admin API at /api on this origin. No framework and no build step; text goes into the page as
// text (never as HTML), so nothing an entity holds can run as script.

const main = document.getElementById('main');
/** The node's `GET /` (role, version, hostname...), read once. */
let node = null;
/** Stops the current page's timers when another page is shown. */
let leave = null;

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the Admin API answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** A call to the Admin API; its JSON answer, or an ApiError with Kong's message and fields. */
async function api(path, options = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const response = await fetch('/api' + path, {
    method: options.method || 'GET',
    headers,
    body,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** An element with attributes (`class`, `text`, `on<event>`, others as is) and children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function badge(text, kind) {
  return h('span', { class: kind ? `badge ${kind}` : 'badge' }, text);
}

/** `n s ago`, `n min ago`... for a time in seconds since the epoch. */
function ago(seconds) {
  const delta = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (delta < 120) return `${delta} s ago`;
  if (delta < 7200) return `${Math.round(delta / 60)} min ago`;
  if (delta < 172800) return `${Math.round(delta / 3600)} h ago`;
  return `${Math.round(delta / 86400)} d ago`;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), min = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${min} min`;
  if (min) return `${min} min ${s % 60} s`;
  return `${s} s`;
}

function date(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function table(columns, rows, rowAttrs) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.title)))),
      h('tbody', {}, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {},
        columns.map((c) => h('td', { class: c.mono ? 'mono' : null, 'data-column': c.key, 'data-label': c.title }, c.cell(row))))))));
}

function failure(error) {
  return h('p', { class: 'notice bad', role: 'alert' }, error instanceof ApiError || error instanceof Error
    ? error.message : String(error));
}

/** Runs `work` now and every `ms`, until the page is left. */
function every(ms, work) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await work();
    } finally {
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---- pages ----

function page(title, ...children) {
  document.title = `${title} · gateway console`;
  main.replaceChildren(h('h1', { tabindex: '-1' }, title), ...children);
  main.dataset.generation = String(generation);
}

async function overview() {
  const body = h('div', {});
  page('Overview', body);
  const role = node.configuration.role;
  return every(5000, async () => {
    try {
      const status = await api('/status');
      const planes = role === 'control_plane' ? (await api('/clustering/data-planes')).data : [];
      const cards = h('div', { class: 'cards' },
        card('Role', ROLES[role] || role),
        card('Version', node.version),
        card('Hostname', node.hostname),
        card('Uptime', node.started_at ? duration(Date.now() / 1000 - node.started_at) : 'unknown'),
        card('Configuration hash', status.configuration_hash, 'config-hash', true),
        role === 'control_plane' ? card('Data plane nodes', String(planes.length), 'dp-count') : null);
      const counts = Object.entries(status.entities).filter(([kind, n]) => n > 0 || ['services', 'routes', 'consumers', 'plugins'].includes(kind));
      const warnings = [];
      const now = Date.now() / 1000;
      for (const dp of planes) {
        const expiry = dp.cert_details && dp.cert_details.expiry_timestamp;
        if (expiry && expiry - now < 30 * 86400) {
          warnings.push(`The certificate of data plane ${dp.hostname} (${dp.id}) expires on ${date(expiry)}.`);
        }
        if (dp.connected && dp.config_hash !== status.configuration_hash) {
          warnings.push(`Data plane ${dp.hostname} (${dp.id}) is out of sync: it serves ${dp.config_hash}.`);
        }
        if (!dp.connected) warnings.push(`Data plane ${dp.hostname} (${dp.id}) is not connected (last seen ${ago(dp.last_seen)}).`);
      }
      if (role === 'control_plane' && node.configuration.cluster_mtls === 'pki') {
        for (const cert of (await api('/clustering/dp-certificates')).data) {
          if (cert.not_after && cert.not_after - now < 30 * 86400) {
            warnings.push(`The trusted data plane certificate ${cert.subject} ${cert.expired ? 'has expired' : `expires on ${date(cert.not_after)}`}.`);
          }
        }
      }
      body.replaceChildren(
        cards,
        h('h2', {}, 'Warnings'),
        warnings.length
          ? h('ul', { class: 'warnings', id: 'warnings' }, warnings.map((w) => h('li', {}, w)))
          : h('p', { class: 'muted', id: 'warnings' }, 'None.'),
        h('h2', {}, 'Entities'),
        table([
          { title: 'Kind', key: 'kind', cell: ([kind]) => kind },
          { title: 'Count', key: 'count', cell: ([, n]) => String(n) },
        ], counts));
    } catch (error) {
      body.replaceChildren(failure(error));
    }
  });
}

function card(label, value, id, mono) {
  return h('div', { class: 'card', id }, h('div', { class: 'label' }, label), h('div', { class: mono ? 'value mono' : 'value' }, value));
}

/** A long id or hash, shown by its start; the whole of it in `title` (and to a screen reader). */
function short(value, length = 8) {
  return value && value.length > length + 1 ? h('abbr', { title: value, 'aria-label': value }, `${value.slice(0, length)}…`) : value;
}

const ROLES = { control_plane: 'control plane', data_plane: 'data plane', traditional: 'traditional' };

/** Kong's sync_status values, as a badge. */
function syncBadge(status) {
  const kind = status === 'normal' ? 'ok' : status === 'unknown' ? null : 'bad';
  return badge(status, kind);
}

async function dataPlanes() {
  const body = h('div', {});
  page('Data plane nodes',
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted grow' }, 'Refreshed every 2 seconds.'),
      h('a', { class: 'button', href: '/data-planes/new', id: 'new-data-plane' }, 'New data plane node')),
    body);
  return every(2000, async () => {
    try {
      const [planes, status] = await Promise.all([api('/clustering/data-planes'), api('/status')]);
      const hash = status.configuration_hash;
      const now = Date.now() / 1000;
      const rows = planes.data;
      if (!rows.length) {
        body.replaceChildren(h('p', { class: 'notice', id: 'no-data-planes' }, 'No data plane has connected yet.'));
        return;
      }
      body.replaceChildren(table([
        { title: 'Hostname', key: 'hostname', cell: (r) => r.hostname },
        { title: 'ID', key: 'id', mono: true, cell: (r) => short(r.id) },
        { title: 'IP', key: 'ip', mono: true, cell: (r) => r.ip },
        { title: 'Version', key: 'version', cell: (r) => r.version },
        { title: 'Labels', key: 'labels', cell: (r) => Object.entries(r.labels || {}).flatMap(([k, v], i) => [i ? ' ' : null, badge(`${k}: ${v}`)]) },
        {
          title: 'Status', key: 'status',
          cell: (r) => (r.connected && now - r.last_seen < 45 ? badge('connected', 'ok') : badge('stale', 'bad')),
        },
        { title: 'Sync status', key: 'sync_status', cell: (r) => syncBadge(r.sync_status) },
        {
          title: 'Config hash', key: 'config_hash', mono: true,
          cell: (r) => (r.config_hash === hash
            ? short(r.config_hash, 12)
            : h('span', { class: 'differs', title: `the control plane serves ${hash}` }, short(r.config_hash, 12), ' (differs)')),
        },
        { title: 'Last seen', key: 'last_seen', cell: (r) => ago(r.last_seen) },
        {
          title: 'Certificate expires', key: 'cert_expiry',
          cell: (r) => {
            const expiry = r.cert_details && r.cert_details.expiry_timestamp;
            if (!expiry) return '—';
            const days = Math.floor((expiry - now) / 86400);
            return [date(expiry), ' ', badge(`${days} d`, days < 30 ? 'warn' : null)];
          },
        },
      ], rows, (r) => ({ 'data-id': r.id })));
    } catch (error) {
      body.replaceChildren(failure(error));
    }
  });
}

/** The port of the first address of a listen list (`127.0.0.1:8005 reuseport` → `8005`). */
function listenPort(list) {
  const first = (list && list[0]) || '';
  const address = first.split(/\s+/)[0];
  const port = address.slice(address.lastIndexOf(':') + 1);
  return /^\d+$/.test(port) ? port : '';
}

/** A file the browser saves, made here (nothing goes to the server). */
function download(name, text, label) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/octet-stream' }));
  return h('a', { class: 'button ghost-link', href: url, download: name, 'data-file': name }, label || `Download ${name}`);
}

/** The dp.conf of a new data plane node, in kong.conf's format. */
function dpConf(o) {
  const conf = node.configuration;
  const lines = [
    `# A data plane node of the control plane ${node.hostname}, made by its console on ${new Date().toISOString().slice(0, 10)}.`,
    '# Start it with: gateway -c dp.conf',
    'role = data_plane',
    'database = off',
    `cluster_mtls = ${conf.cluster_mtls}`,
    `cluster_control_plane = ${o.controlPlane}`,
    `cluster_telemetry_endpoint = ${o.telemetry}`,
  ];
  if (conf.cluster_server_name) lines.push(`cluster_server_name = ${conf.cluster_server_name}`);
  if (conf.cluster_mtls === 'pki') {
    lines.push(`cluster_cert = ${o.name}.crt`, `cluster_cert_key = ${o.name}.key`,
      '# the CA that signed the control plane\'s certificate (its cluster_ca_cert, or yours)',
      'cluster_ca_cert = cluster_ca.crt');
  } else {
    lines.push('# the control plane\'s shared pair (gateway hybrid gen_cert): copy both files here',
      'cluster_cert = cluster.crt', 'cluster_cert_key = cluster.key');
  }
  if (o.labels) lines.push(`cluster_dp_labels = ${o.labels}`);
  if (o.useProxy) {
    lines.push('# the forward proxy the node reaches its control plane through',
      'cluster_use_proxy = on', `proxy_server = ${o.proxyServer}`, `proxy_server_ssl_verify = ${o.proxyVerify ? 'on' : 'off'}`);
  }
  lines.push('proxy_listen = 0.0.0.0:8000, 0.0.0.0:8443 http2 ssl');
  return `${lines.join('\n')}\n`;
}

async function newDataPlane() {
  const conf = node.configuration;
  const pki = conf.cluster_mtls === 'pki';
  const host = node.hostname || 'control-plane.example';
  const field = (id, label, attrs, help) => {
    const input = h('input', { id, name: id, ...attrs });
    const error = h('span', { class: 'field-error', id: `${id}-error`, hidden: true });
    return [h('div', { class: 'field' }, h('label', { for: id }, label), input, help ? h('span', { class: 'muted help' }, help) : null, error), input, error];
  };
  const [nameRow, name, nameError] = field('dp-name', 'Node name (the certificate\'s CN)', { value: 'dp-1', required: true });
  const [daysRow, days, daysError] = field('dp-days', 'Valid for (days)', { type: 'number', value: '3650', min: '1', max: '36500' });
  const [cpRow, controlPlane, cpError] = field('dp-control-plane', 'Control plane address (cluster_control_plane)',
    { value: `${host}:${listenPort(conf.cluster_listen) || '8005'}` }, 'host:port, as the node reaches it');
  const [telRow, telemetry, telError] = field('dp-telemetry', 'Telemetry address (cluster_telemetry_endpoint)',
    { value: `${host}:${listenPort(conf.cluster_telemetry_listen) || '8006'}` });
  const [labelsRow, labels] = field('dp-labels', 'Labels (cluster_dp_labels)', { placeholder: 'region:eu-west, env:prod' });
  const useProxy = h('input', { id: 'dp-use-proxy', type: 'checkbox' });
  const [proxyRow, proxyServer, proxyError] = field('dp-proxy-server', 'Forward proxy (proxy_server)',
    { placeholder: 'http://proxy.internal:3128' }, 'http:// or https://, with user:password@ if it asks for them');
  const proxyVerify = h('input', { id: 'dp-proxy-verify', type: 'checkbox', checked: true });
  const proxyFields = h('div', { class: 'fields-grid', hidden: true }, proxyRow,
    h('div', { class: 'field check' }, proxyVerify, h('label', { for: 'dp-proxy-verify' }, 'Verify an https proxy\'s certificate (proxy_server_ssl_verify)')));
  useProxy.addEventListener('change', () => { proxyFields.hidden = !useProxy.checked; });
  const formError = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', id: 'dp-generate' }, pki ? 'Generate the certificate and dp.conf' : 'Make dp.conf');
  const output = h('section', { id: 'dp-output', 'aria-live': 'polite' });
  const form = h('form', { class: 'entity-form', novalidate: true }, formError,
    h('div', { class: 'fields-grid' }, pki ? [nameRow, daysRow] : null, cpRow, telRow, labelsRow),
    h('fieldset', {}, h('legend', {}, 'Behind a firewall'),
      h('div', { class: 'field check' }, useProxy, h('label', { for: 'dp-use-proxy' }, 'Reach the control plane through a forward proxy (cluster_use_proxy)')),
      proxyFields),
    h('div', { class: 'toolbar' }, submit));
  page('New data plane node',
    h('p', {}, pki
      ? 'Makes a certificate pair for the node, trusted by this control plane from now on (until you remove it under its certificates), and the dp.conf the node starts with. The private key is shown here once: the control plane keeps only the certificate.'
      : 'This control plane uses cluster_mtls = shared: every node presents the one shared certificate, so there is no pair to make. This makes the dp.conf the node starts with. For a certificate per node, use cluster_mtls = pki.'),
    form, output);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const span of [nameError, daysError, cpError, telError, proxyError]) { span.hidden = true; span.textContent = ''; }
    for (const input of [name, days, controlPlane, telemetry, proxyServer]) input.removeAttribute('aria-invalid');
    formError.hidden = true;
    const problems = [];
    const need = (input, error, ok, message) => {
      if (ok) return;
      error.textContent = message;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      problems.push(input);
    };
    const hostPort = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;
    need(controlPlane, cpError, hostPort.test(controlPlane.value.trim()), 'must be host:port');
    need(telemetry, telError, hostPort.test(telemetry.value.trim()), 'must be host:port');
    if (useProxy.checked) need(proxyServer, proxyError, /^https?:\/\/[^\s#]+$/.test(proxyServer.value.trim()), 'must be an http:// or https:// URL');
    if (problems.length) { problems[0].focus(); return; }
    const options = {
      name: name.value.trim(), controlPlane: controlPlane.value.trim(), telemetry: telemetry.value.trim(),
      labels: labels.value.split(',').map((l) => l.trim()).filter(Boolean).join(','),
      useProxy: useProxy.checked, proxyServer: proxyServer.value.trim(), proxyVerify: proxyVerify.checked,
    };
    submit.disabled = true;
    try {
      const parts = [];
      if (pki) {
        const made = await api('/clustering/dp-certificates/generate', { method: 'POST', body: { name: options.name, days: Number(days.value) } });
        parts.push(
          h('h2', {}, `Certificate (${options.name}.crt)`), h('pre', { class: 'json', id: 'dp-cert' }, made.cert),
          download(`${options.name}.crt`, made.cert),
          h('h2', {}, `Private key (${options.name}.key)`),
          h('p', { class: 'notice warn' }, 'Shown once: the control plane does not keep it. Save it now, readable only by the node (chmod 600).'),
          h('pre', { class: 'json', id: 'dp-key' }, made.key), download(`${options.name}.key`, made.key),
          h('p', { class: 'muted' }, `Trusted by this control plane as certificate ${made.id}, valid until ${date(made.not_after)}.`));
      }
      const text = dpConf(options);
      output.replaceChildren(
        h('h2', {}, 'dp.conf'), h('pre', { class: 'json', id: 'dp-conf' }, text), download('dp.conf', text),
        ...parts,
        h('h2', {}, 'Then'),
        h('ol', {},
          h('li', {}, pki ? 'Put dp.conf, the certificate, the key and cluster_ca.crt (the CA of the control plane\'s certificate) in one directory on the node.'
            : 'Put dp.conf, cluster.crt and cluster.key (from the control plane) in one directory on the node.'),
          h('li', {}, 'Run gateway -c dp.conf there.'),
          h('li', {}, h('a', { href: '/data-planes' }, 'Data plane nodes'), ' lists it once it has connected.')));
      output.querySelector('h2').setAttribute('tabindex', '-1');
      output.querySelector('h2').focus();
    } catch (error) {
      const messages = fieldMessages(error.body && error.body.fields);
      if (messages.name) need(name, nameError, false, messages.name);
      if (messages.days) need(days, daysError, false, messages.days);
      formError.textContent = error.message;
      formError.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return null;
}

/** `/certificates`: on a control plane, the data plane certificates it trusts (pki: list, add
 *  a CA or a node's own certificate, remove); everywhere, the proxy's certificates (entities). */
async function certificates() {
  const role = node.configuration.role;
  const pki = node.configuration.cluster_mtls === 'pki';
  const planes = h('section', { id: 'dp-certificates' });
  const proxy = h('section', { id: 'proxy-certificates' });
  page('Certificates', role === 'control_plane' ? planes : null, proxy);
  proxy.replaceChildren(subList({
    id: 'proxy-certificates-list', title: 'Proxy certificates (served by SNI)', path: '/certificates',
    describe: (c) => `certificate ${c.id}`,
    columns: [
      { title: 'ID', key: 'id', mono: true, cell: (c) => short(c.id) },
      { title: 'SNIs', key: 'snis', cell: (c) => (c.snis || []).join(', ') },
      { title: 'Tags', key: 'tags', cell: (c) => (c.tags || []).map((t) => badge(t)) },
      { title: 'Created', key: 'created_at', cell: (c) => (c.created_at ? date(c.created_at) : '') },
    ],
    spec: [['cert', 'Certificate (PEM, with its chain)', 'textarea'], ['key', 'Private key (PEM)', 'textarea'],
      ['snis', 'SNIs', 'list'], ['tags', 'Tags', 'list']],
  }));
  if (role !== 'control_plane') return null;
  if (!pki) {
    planes.replaceChildren(h('h2', {}, 'Data plane certificates'),
      h('p', { class: 'notice' }, 'This control plane uses cluster_mtls = shared: it trusts data planes by the one shared cluster certificate only. To trust a certificate per node, or a CA of yours, use cluster_mtls = pki.'));
    return null;
  }
  const pem = h('textarea', { id: 'dp-cert-pem', rows: '6', placeholder: '-----BEGIN CERTIFICATE-----', spellcheck: 'false' });
  const pemError = h('span', { class: 'field-error', id: 'dp-cert-pem-error', hidden: true });
  const add = h('form', { class: 'entity-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'dp-cert-pem' }, 'Trust another certificate: a CA (its data plane certificates are accepted) or a data plane\'s own (pinned)'), pem, pemError),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', id: 'dp-cert-add' }, 'Trust it')));
  const listing = h('div', {});
  const refresh = async () => {
    try {
      const list = await api('/clustering/dp-certificates');
      const now = Date.now() / 1000;
      listing.replaceChildren(list.data.length ? table([
        { title: 'Subject', key: 'subject', cell: (c) => c.subject || '' },
        { title: 'Kind', key: 'kind', cell: (c) => (c.is_ca ? badge('CA') : badge('pinned')) },
        { title: 'Issuer', key: 'issuer', cell: (c) => c.issuer || '' },
        {
          title: 'Expires', key: 'expires',
          cell: (c) => {
            if (!c.not_after) return '';
            const days = Math.floor((c.not_after - now) / 86400);
            return [date(c.not_after), ' ', c.expired ? badge('expired', 'bad') : badge(`${days} d`, days < 30 ? 'warn' : null)];
          },
        },
        { title: 'Digest', key: 'digest', mono: true, cell: (c) => short(c.cert_digest, 12) },
        {
          title: '', key: 'remove',
          cell: (c) => h('button', {
            type: 'button', class: 'danger', 'aria-label': `Remove ${c.subject}`,
            onclick: async () => {
              if (!window.confirm(`Stop trusting ${c.subject}? New connections with it will be refused.`)) return;
              try {
                await api(`/clustering/dp-certificates/${c.id}`, { method: 'DELETE' });
                refresh();
              } catch (error) {
                listing.prepend(failure(error));
              }
            },
          }, 'Remove'),
        },
      ], list.data, (c) => ({ 'data-id': c.id })) : h('p', { class: 'notice' }, 'None besides cluster_ca_cert.'));
    } catch (error) {
      listing.replaceChildren(failure(error));
    }
  };
  add.addEventListener('submit', async (event) => {
    event.preventDefault();
    pemError.hidden = true;
    pem.removeAttribute('aria-invalid');
    try {
      await api('/clustering/dp-certificates', { method: 'POST', body: { cert: pem.value } });
      pem.value = '';
      refresh();
    } catch (error) {
      const messages = fieldMessages(error.body && error.body.fields);
      pemError.textContent = messages.cert || error.message;
      pemError.hidden = false;
      pem.setAttribute('aria-invalid', 'true');
      pem.focus();
    }
  });
  planes.replaceChildren(h('h2', {}, 'Data plane certificates'),
    h('p', { class: 'muted' }, 'Trusted on top of cluster_ca_cert. A change applies to the next connection; links already up stay up.'),
    listing, add);
  refresh();
  return null;
}

// ---- charts (SVG, drawn here) ----

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    // Colours are the theme's variables: set as style (a presentation attribute cannot hold var()).
    if (key === 'fill' || key === 'stroke') el.style.setProperty(key, String(value));
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SERIES = ['var(--accent)', 'var(--ok)', 'var(--warn)', 'var(--bad)', 'var(--muted)', 'var(--text)'];

/** A chart's frame: an accessible SVG (`summary` is what a screen reader hears; the numbers are
 *  also in the table under it). */
function chart(id, summary, width, height, ...parts) {
  return svg('svg', { id, class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': summary, preserveAspectRatio: 'xMinYMin meet' },
    svg('title', {}, summary), ...parts);
}

/** Bars stacked per bucket: `buckets` [{label, values: {series: n}}], `series` names in order. */
function stackedBars(id, summary, buckets, series) {
  const width = 720, height = 240, left = 48, bottom = 28, top = 10;
  const max = Math.max(1, ...buckets.map((b) => series.reduce((sum, name) => sum + (b.values[name] || 0), 0)));
  const step = (width - left) / Math.max(1, buckets.length);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const parts = [
    svg('line', { x1: left, y1: y(0), x2: width, y2: y(0), stroke: 'var(--border)' }),
    svg('text', { x: left - 6, y: y(max) + 4, 'text-anchor': 'end', class: 'axis' }, String(max)),
    svg('text', { x: left - 6, y: y(0), 'text-anchor': 'end', class: 'axis' }, '0'),
  ];
  buckets.forEach((bucket, i) => {
    let base = 0;
    series.forEach((name, k) => {
      const v = bucket.values[name] || 0;
      if (!v) return;
      parts.push(svg('rect', { x: left + i * step + 2, y: y(base + v), width: Math.max(1, step - 4), height: y(base) - y(base + v), fill: SERIES[k % SERIES.length], 'data-series': name },
        svg('title', {}, `${bucket.label} · ${name}: ${v}`)));
      base += v;
    });
    if (i % Math.ceil(buckets.length / 6) === 0) {
      parts.push(svg('text', { x: left + i * step + step / 2, y: height - 8, 'text-anchor': 'middle', class: 'axis' }, bucket.label));
    }
  });
  return chart(id, summary, width, height, parts);
}

/** One horizontal bar per item: [{label, value, colour?}]. */
function horizontalBars(id, summary, items, unit = '') {
  const row = 26, left = 150, width = 720;
  const height = Math.max(row, items.length * row) + 8;
  const max = Math.max(1e-9, ...items.map((i) => i.value || 0));
  const parts = items.flatMap((item, i) => {
    const w = ((item.value || 0) / max) * (width - left - 90);
    return [
      svg('text', { x: left - 8, y: i * row + 18, 'text-anchor': 'end', class: 'axis' }, item.label),
      svg('rect', { x: left, y: i * row + 5, width: Math.max(item.value ? 1 : 0, w), height: row - 10, fill: item.colour || SERIES[i % SERIES.length] },
        svg('title', {}, `${item.label}: ${item.value}${unit}`)),
      svg('text', { x: left + w + 6, y: i * row + 18, class: 'axis' }, item.value === null ? '—' : `${item.value}${unit}`),
    ];
  });
  return chart(id, summary, width, height, parts);
}

const GROUPS = {
  service: ['Service', (g) => (g ? g.name || g.id : '(no service)')],
  route: ['Route', (g) => (g ? g.name || g.id : '(no route matched)')],
  consumer: ['Consumer', (g) => (g ? g.username || g.id : '(no consumer)')],
  data_plane: ['Data plane', (g) => (g ? g.hostname || g.id : '(none)')],
};

const RANGES = { '15m': 15 * 60, '1h': 3600, '24h': 86400 };

async function analytics() {
  const query = new URLSearchParams(location.search);
  const group = Object.hasOwn(GROUPS, query.get('group_by') || '') ? query.get('group_by') : 'service';
  const range = Object.hasOwn(RANGES, query.get('range') || '') ? query.get('range') : '1h';
  const select = (id, label, options, value) => h('div', {}, h('label', { for: id }, label),
    h('select', { id, onchange: (e) => go(`/analytics?group_by=${e.target.id === 'group-by' ? e.target.value : group}&range=${e.target.id === 'range' ? e.target.value : range}`) },
      Object.entries(options).map(([k, text]) => h('option', { value: k, selected: k === value }, text))));
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  page('Analytics',
    h('div', { class: 'toolbar' },
      select('group-by', 'Group by', Object.fromEntries(Object.entries(GROUPS).map(([k, [t]]) => [k, t])), group),
      select('range', 'Over', { '15m': 'the last 15 minutes', '1h': 'the last hour', '24h': 'the last 24 hours' }, range)),
    body);
  return every(10000, async () => {
    try {
      // Whole minutes, as the store keeps them: buckets that share no minute.
      const end = Math.floor(Date.now() / 60000) * 60 + 60;
      const start = end - RANGES[range];
      const buckets = range === '15m' ? 15 : 12;
      const width = RANGES[range] / buckets;
      const [totals, grouped, billing, ...series] = await Promise.all([
        api(`/analytics?start=${start}&end=${end - 1}`),
        api(`/analytics?start=${start}&end=${end - 1}&group_by=${group}`),
        api('/analytics/billing'),
        ...Array.from({ length: buckets }, (_, i) => api(`/analytics?start=${Math.floor(start + i * width)}&end=${Math.floor(start + (i + 1) * width) - 1}&group_by=${group}`)),
      ]);
      const [title, nameOf] = GROUPS[group];
      const all = totals.data[0] || { calls: 0, status: {}, latency_ms: {} };
      const top = grouped.data.slice(0, 5).map((row) => nameOf(row[group]));
      const overTime = series.map((answer, i) => ({
        label: new Date((start + i * width) * 1000).toISOString().slice(11, 16),
        values: Object.fromEntries(answer.data.map((row) => [top.includes(nameOf(row[group])) ? nameOf(row[group]) : 'other', row.calls])),
      }));
      const other = overTime.some((b) => b.values.other);
      const names = other ? [...top, 'other'] : top;
      const legend = h('ul', { class: 'legend' }, names.map((name, k) => h('li', {}, h('span', { class: 'swatch', 'data-colour': k % SERIES.length }), name)));
      body.replaceChildren(
        h('div', { class: 'cards' },
          card('Requests', String(all.calls), 'total-calls'),
          card('2xx', String(all.status['2xx'] || 0), 'total-2xx'),
          card('4xx', String(all.status['4xx'] || 0), 'total-4xx'),
          card('5xx', String(all.status['5xx'] || 0), 'total-5xx'),
          card('p95 latency', all.latency_ms.p95 === null || all.latency_ms.p95 === undefined ? '—' : `${all.latency_ms.p95} ms`, 'total-p95'),
          card('Dropped records', String(totals.dropped || 0), 'dropped')),
        h('h2', {}, `Requests over time, by ${title.toLowerCase()}`),
        stackedBars('chart-over-time', `Requests per ${Math.round(width / 60)} minutes by ${title.toLowerCase()}: ${all.calls} in all`, overTime, names),
        legend,
        h('h2', {}, 'Status classes'),
        horizontalBars('chart-status', `Status classes: ${['2xx', '3xx', '4xx', '5xx'].map((c) => `${c} ${all.status[c] || 0}`).join(', ')}`,
          ['2xx', '3xx', '4xx', '5xx'].map((c, i) => ({ label: c, value: all.status[c] || 0, colour: ['var(--ok)', 'var(--accent)', 'var(--warn)', 'var(--bad)'][i] }))),
        h('h2', {}, `Latency percentiles (p95), by ${title.toLowerCase()}`),
        horizontalBars('chart-latency', `p95 latency by ${title.toLowerCase()}`,
          grouped.data.slice(0, 10).map((row) => ({ label: nameOf(row[group]), value: row.latency_ms.p95 })), ' ms'),
        h('h2', {}, `By ${title.toLowerCase()}`),
        table([
          { title, key: 'group', cell: (row) => nameOf(row[group]) },
          { title: 'Requests', key: 'calls', cell: (row) => String(row.calls) },
          ...['2xx', '3xx', '4xx', '5xx'].map((c) => ({ title: c, key: c, cell: (row) => String(row.status[c] || 0) })),
          ...['p50', 'p95', 'p99'].map((p) => ({ title: `${p} ms`, key: p, cell: (row) => (row.latency_ms[p] === null ? '—' : String(row.latency_ms[p])) })),
          { title: 'Bytes out', key: 'bytes_out', cell: (row) => String(row.bytes_out) },
        ], grouped.data, (row) => ({ 'data-group': nameOf(row[group]) })),
        h('h2', {}, 'Billing, per month'),
        horizontalBars('chart-billing', `API calls per month: ${billing.data.map((m) => `${m.month} ${m.api_calls}`).join(', ') || 'none yet'}`,
          billing.data.map((m) => ({ label: m.month, value: m.api_calls }))),
        table([
          { title: 'Month', key: 'month', cell: (m) => m.month },
          { title: 'API calls', key: 'api_calls', cell: (m) => String(m.api_calls) },
          { title: 'Services', key: 'services', cell: (m) => String(m.services) },
        ], billing.data, (m) => ({ 'data-month': m.month })));
    } catch (error) {
      body.replaceChildren(error.status === 404
        ? h('p', { class: 'notice' }, 'This node keeps no analytics (analytics = off).')
        : failure(error));
    }
  });
}

/** What each list shows, and the field an item is named by. */
const KINDS = {
  services: {
    title: 'Services', name: (e) => e.name || e.id,
    columns: [
      ['Host', (e) => e.host], ['Port', (e) => String(e.port)], ['Protocol', (e) => e.protocol],
      ['Path', (e) => e.path || ''], ['Enabled', (e) => (e.enabled === false ? 'no' : 'yes')],
    ],
  },
  routes: {
    title: 'Routes', name: (e) => e.name || e.id,
    columns: [
      ['Paths', (e) => (e.paths || []).join(', ')], ['Hosts', (e) => (e.hosts || []).join(', ')],
      ['Methods', (e) => (e.methods || []).join(', ')], ['Service', (e) => (e.service ? e.service.id : '')],
    ],
  },
  consumers: {
    title: 'Consumers', name: (e) => e.username || e.custom_id || e.id,
    columns: [['Custom ID', (e) => e.custom_id || '']],
  },
  plugins: {
    title: 'Plugins', name: (e) => e.id,
    columns: [
      ['Plugin', (e) => e.name],
      ['Applies to', (e) => ['route', 'service', 'consumer'].filter((k) => e[k]).map((k) => `${k} ${e[k].id}`).join(', ') || 'everything'],
      ['Enabled', (e) => (e.enabled === false ? 'no' : 'yes')],
    ],
  },
  upstreams: {
    title: 'Upstreams', name: (e) => e.name || e.id,
    columns: [['Algorithm', (e) => e.algorithm || ''], ['Slots', (e) => String(e.slots ?? '')]],
  },
};

/** The fields a form offers for each kind: [field, label, type, options]. Types: text, number,
 *  list (comma separated), bool, select (options), service (a service by name or id). */
const FORMS = {
  services: [
    ['name', 'Name', 'text'],
    ['protocol', 'Protocol', 'select', ['http', 'https', 'grpc', 'grpcs']],
    ['host', 'Host', 'text'],
    ['port', 'Port', 'number'],
    ['path', 'Path', 'text'],
    ['retries', 'Retries', 'number'],
    ['connect_timeout', 'Connect timeout (ms)', 'number'],
    ['read_timeout', 'Read timeout (ms)', 'number'],
    ['write_timeout', 'Write timeout (ms)', 'number'],
    ['tags', 'Tags', 'list'],
    ['enabled', 'Enabled', 'bool'],
  ],
  routes: [
    ['name', 'Name', 'text'],
    ['service', 'Service', 'service'],
    ['paths', 'Paths', 'list'],
    ['hosts', 'Hosts', 'list'],
    ['methods', 'Methods', 'list'],
    ['protocols', 'Protocols', 'list'],
    ['strip_path', 'Strip the matched path', 'bool'],
    ['preserve_host', 'Preserve the Host header', 'bool'],
    ['tags', 'Tags', 'list'],
  ],
  consumers: [
    ['username', 'Username', 'text'],
    ['custom_id', 'Custom ID', 'text'],
    ['tags', 'Tags', 'list'],
  ],
  upstreams: [
    ['name', 'Name', 'text'],
    ['algorithm', 'Algorithm', 'select', ['round-robin', 'consistent-hashing', 'least-connections', 'latency']],
    ['slots', 'Slots', 'number'],
    ['tags', 'Tags', 'list'],
  ],
};

/** Kong's `fields` of a 400, as one message per top-level field. */
function fieldMessages(fields) {
  const text = (value) => {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) return value.map(text).filter(Boolean).join('; ');
    return Object.entries(value).map(([k, v]) => `${k}: ${text(v)}`).join('; ');
  };
  return Object.fromEntries(Object.entries(fields || {}).map(([field, value]) => [field, text(value)]));
}

/** A form for an entity of `kind`: empty to create one, or filled from `entity` to change it.
 *  `done(saved)` runs once the Admin API took it. Kong's field errors are shown next to their
 *  fields; nothing is written unless the whole entity is accepted. */
function entityForm(kind, entity, done) {
  return formFor({
    spec: FORMS[kind], entity, done,
    url: entity ? `/${kind}/${entity.id}` : `/${kind}`,
  });
}

/** A form of `spec`'s fields that writes `url` (PATCH when it changes `entity`, else POST), ids
 *  `${prefix}-${field}`; `done(saved)` once the Admin API took it. `password` fields are never
 *  filled in from what exists. */
function formFor({ spec, entity, url, done, prefix = 'field', submitLabel }) {
  const inputs = {};
  const errors = {};
  const formError = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  const rows = spec.map(([field, label, type, options]) => {
    const id = `${prefix}-${field}`;
    const value = entity ? entity[field] : undefined;
    let input;
    if (type === 'bool') {
      input = h('input', { id, name: field, type: 'checkbox' });
      input.checked = value === undefined ? !(field === 'preserve_host') : Boolean(value);
    } else if (type === 'select') {
      input = h('select', { id, name: field }, h('option', { value: '' }, '(default)'),
        options.map((o) => h('option', { value: o, selected: value === o }, o)));
    } else if (type === 'textarea') {
      input = h('textarea', { id, name: field, rows: '4', spellcheck: 'false' });
      input.value = value || '';
    } else if (type === 'password') {
      input = h('input', { id, name: field, type: 'password', autocomplete: 'new-password' });
    } else {
      const shown = value === null || value === undefined ? ''
        : type === 'list' ? value.join(', ')
          : type === 'service' ? value.id : String(value);
      input = h('input', { id, name: field, type: type === 'number' ? 'number' : 'text', value: shown,
        placeholder: type === 'list' ? 'comma separated' : type === 'service' ? 'name or id' : null });
    }
    inputs[field] = [input, type];
    errors[field] = h('span', { class: 'field-error', id: `${id}-error`, hidden: true });
    return h('div', { class: type === 'bool' ? 'field check' : 'field' },
      type === 'bool' ? [input, h('label', { for: id }, label)] : [h('label', { for: id }, label), input],
      errors[field]);
  });
  const submit = h('button', { type: 'submit' }, submitLabel || (entity ? 'Save' : 'Create'));
  const form = h('form', { class: 'entity-form', novalidate: true }, formError, h('div', { class: 'fields-grid' }, rows),
    h('div', { class: 'toolbar' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {};
    for (const [field, [input, type]] of Object.entries(inputs)) {
      if (type === 'bool') {
        body[field] = input.checked;
        continue;
      }
      const raw = type === 'password' ? input.value : input.value.trim();
      if (raw === '') {
        if (entity && type !== 'password' && entity[field] !== null && entity[field] !== undefined) body[field] = null;
        continue;
      }
      if (type === 'number') body[field] = Number(raw);
      else if (type === 'list') body[field] = raw.split(',').map((v) => v.trim()).filter(Boolean);
      else if (type === 'service') body[field] = /^[0-9a-f-]{36}$/i.test(raw) ? { id: raw } : { name: raw };
      else body[field] = raw;
    }
    for (const [field, span] of Object.entries(errors)) {
      span.hidden = true;
      span.textContent = '';
      inputs[field][0].removeAttribute('aria-invalid');
      inputs[field][0].removeAttribute('aria-describedby');
    }
    formError.hidden = true;
    submit.disabled = true;
    try {
      const saved = await api(url, { method: entity ? 'PATCH' : 'POST', body });
      done(saved);
    } catch (error) {
      const messages = fieldMessages(error.body && error.body.fields);
      const unplaced = [];
      let first = null;
      for (const [field, message] of Object.entries(messages)) {
        if (errors[field]) {
          errors[field].textContent = message;
          errors[field].hidden = false;
          inputs[field][0].setAttribute('aria-invalid', 'true');
          inputs[field][0].setAttribute('aria-describedby', errors[field].id);
          first = first || inputs[field][0];
        } else {
          unplaced.push(`${field}: ${message}`);
        }
      }
      formError.textContent = [error.message, ...unplaced].join(' — ');
      formError.hidden = false;
      (first || submit).focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** The inputs of a plugin's `config` record from its schema (`/plugins/schema/{name}`), nested
 *  records as fieldsets; ids and error paths are `config.a.b`. */
function configFields(fields, values, path, inputs, errors) {
  return fields.map((entry) => {
    const [name, spec] = Object.entries(entry)[0];
    const key = `${path}.${name}`;
    const id = `plugin-${key.replace(/\./g, '-')}`;
    const value = values ? values[name] : undefined;
    if (spec.type === 'record') {
      return h('fieldset', {}, h('legend', {}, name), configFields(spec.fields || [], value || {}, key, inputs, errors));
    }
    const error = h('span', { class: 'field-error', id: `${id}-error`, hidden: true });
    errors[key] = error;
    let input;
    if (spec.type === 'boolean') {
      input = h('input', { id, type: 'checkbox' });
      input.checked = value === undefined ? Boolean(spec.default) : Boolean(value);
      inputs[key] = [input, 'bool', input.checked];
      return h('div', { class: 'field check' }, input, h('label', { for: id }, name), error);
    }
    // A list whose items are not plain words (records, or text with commas), or a value of
    // another shape than the schema says, is edited as JSON, so it comes back as it was.
    const plainList = (list) => list.every((v) => (typeof v === 'string' && !v.includes(',')) || typeof v === 'number');
    const asJson = (value !== undefined && value !== null && typeof value === 'object' && !(Array.isArray(value) && plainList(value)))
      || (Array.isArray(spec.default) && !plainList(spec.default));
    if (asJson) {
      input = h('textarea', { id, rows: '3', spellcheck: 'false' });
      input.value = value === undefined || value === null ? '' : JSON.stringify(value);
      inputs[key] = [input, 'json', input.value];
      return h('div', { class: 'field' }, h('label', { for: id }, `${name} (JSON)`), input, error);
    }
    const shown = value === undefined || value === null ? '' : Array.isArray(value) ? value.join(', ') : String(value);
    const placeholder = spec.default === undefined || spec.default === null ? (spec.required ? 'required' : '')
      : Array.isArray(spec.default) ? spec.default.join(', ') : String(spec.default);
    input = h('input', { id, type: spec.type === 'integer' || spec.type === 'number' ? 'number' : 'text', value: shown, placeholder });
    // A field whose default is null says nothing of its type: what is typed is read as JSON
    // when it reads as a number, boolean, list or object, else as text.
    const loose = spec.default === undefined || spec.default === null;
    inputs[key] = [input, spec.type === 'array' ? 'list' : spec.type === 'integer' || spec.type === 'number' ? 'number' : loose ? 'loose' : 'text', shown];
    return h('div', { class: 'field' }, h('label', { for: id }, name), input,
      spec.description ? h('span', { class: 'muted help' }, spec.description) : null, error);
  });
}

/** `5` → 5, `true` → true, `[1, 2]` → [1, 2], anything else as the text it is. */
function looseValue(raw) {
  if (/^-?\d+(\.\d+)?$/.test(raw) || raw === 'true' || raw === 'false' || /^[[{]/.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** Kong's nested `fields` of a 400 as `path → message` (`config.minute`). */
function fieldPaths(fields, path = '') {
  const out = {};
  for (const [name, value] of Object.entries(fields || {})) {
    const key = path ? `${path}.${name}` : name;
    if (value && typeof value === 'object' && !Array.isArray(value)) Object.assign(out, fieldPaths(value, key));
    else out[key] = Array.isArray(value) ? value.filter(Boolean).join('; ') : String(value);
  }
  return out;
}

/** A plugin entity's form: which plugin (new ones only), what it applies to, and its `config`
 *  built from the plugin's own schema. */
async function pluginForm(entity, done) {
  const holder = h('div', {});
  const formError = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  let inputs = {};
  let errors = {};
  const configBox = h('div', {});
  const plain = {};
  const scope = ['route', 'service', 'consumer'].map((k) => {
    const id = `plugin-${k}`;
    const input = h('input', { id, placeholder: 'name or id; empty: all', value: entity && entity[k] ? entity[k].id : '' });
    const error = h('span', { class: 'field-error', id: `${id}-error`, hidden: true });
    plain[k] = [input, error];
    return h('div', { class: 'field' }, h('label', { for: id }, `Applies to ${k}`), input, error);
  });
  const enabled = h('input', { id: 'plugin-enabled', type: 'checkbox' });
  enabled.checked = entity ? entity.enabled !== false : true;
  const load = async (name) => {
    const schema = await api(`/plugins/schema/${encodeURIComponent(name)}`);
    const config = schema.fields.find((f) => f.config).config;
    inputs = {};
    errors = {};
    configBox.replaceChildren(h('fieldset', {}, h('legend', {}, `${name}: config`),
      h('div', { class: 'fields-grid' }, configFields(config.fields || [], entity ? entity.config : null, 'config', inputs, errors))));
  };
  let nameSelect = null;
  if (!entity) {
    const enabledPlugins = (await api('/plugins/enabled')).enabled_plugins.slice().sort();
    nameSelect = h('select', { id: 'plugin-name' }, enabledPlugins.map((n) => h('option', { value: n }, n)));
    nameSelect.addEventListener('change', () => load(nameSelect.value).catch((e) => configBox.replaceChildren(failure(e))));
    await load(enabledPlugins[0]);
  } else {
    await load(entity.name);
  }
  const submit = h('button', { type: 'submit' }, entity ? 'Save' : 'Create');
  const form = h('form', { class: 'entity-form', novalidate: true }, formError,
    h('div', { class: 'fields-grid' },
      nameSelect ? h('div', { class: 'field' }, h('label', { for: 'plugin-name' }, 'Plugin'), nameSelect) : null,
      scope,
      h('div', { class: 'field check' }, enabled, h('label', { for: 'plugin-enabled' }, 'Enabled'))),
    configBox, h('div', { class: 'toolbar' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { enabled: enabled.checked, config: {} };
    if (nameSelect) body.name = nameSelect.value;
    for (const [k, [input]] of Object.entries(plain)) {
      const raw = input.value.trim();
      if (raw) body[k] = /^[0-9a-f-]{36}$/i.test(raw) ? { id: raw } : { name: raw };
      else if (entity && entity[k]) body[k] = null;
    }
    const unreadable = [];
    for (const [key, [input, type, initial]] of Object.entries(inputs)) {
      // A change sends only what was edited: the rest stays as it is.
      const current = type === 'bool' ? input.checked : input.value;
      if (entity && current === initial) continue;
      const parts = key.split('.').slice(1);
      let target = body.config;
      for (const part of parts.slice(0, -1)) target = target[part] = target[part] || {};
      const last = parts[parts.length - 1];
      if (type === 'bool') { target[last] = input.checked; continue; }
      const raw = input.value.trim();
      if (raw === '') {
        if (entity) target[last] = null;
        continue;
      }
      if (type === 'json') {
        try {
          target[last] = JSON.parse(raw);
        } catch {
          unreadable.push([key, 'is not JSON']);
        }
        continue;
      }
      target[last] = type === 'number' ? Number(raw) : type === 'list' ? raw.split(',').map((v) => v.trim()).filter(Boolean)
        : type === 'loose' ? looseValue(raw) : raw;
    }
    for (const error of [...Object.values(errors), ...Object.values(plain).map(([, e]) => e)]) { error.hidden = true; error.textContent = ''; }
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    formError.hidden = true;
    if (unreadable.length) {
      for (const [key, message] of unreadable) {
        errors[key].textContent = message;
        errors[key].hidden = false;
        inputs[key][0].setAttribute('aria-invalid', 'true');
      }
      inputs[unreadable[0][0]][0].focus();
      return;
    }
    submit.disabled = true;
    try {
      done(await api(entity ? `/plugins/${entity.id}` : '/plugins', { method: entity ? 'PATCH' : 'POST', body }));
    } catch (error) {
      const messages = fieldPaths(error.body && error.body.fields);
      const unplaced = [];
      let first = null;
      for (const [path, message] of Object.entries(messages)) {
        const top = path.split('.')[0];
        const [input, span] = errors[path] ? [inputs[path][0], errors[path]] : plain[top] ? plain[top] : [null, null];
        if (!span) { unplaced.push(`${path}: ${message}`); continue; }
        span.textContent = message;
        span.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        first = first || input;
      }
      formError.textContent = [error.message, ...unplaced].join(' — ');
      formError.hidden = false;
      (first || submit).focus();
    } finally {
      submit.disabled = false;
    }
  });
  holder.append(form);
  return holder;
}

/** A list of what belongs to an entity (a consumer's credentials, an upstream's targets), with a
 *  form to add one and a button to remove each. */
function subList({ id, title, path, columns, spec, describe }) {
  const section = h('section', { id, class: 'sub-list' });
  const refresh = async () => {
    try {
      const list = await api(`${path}?size=1000`);
      const rows = list.data;
      section.replaceChildren(h('h2', {}, title),
        rows.length ? table([...columns, {
          title: '', key: 'remove',
          cell: (row) => h('button', {
            type: 'button', class: 'danger', 'aria-label': `Remove ${describe(row)}`,
            onclick: async () => {
              if (!window.confirm(`Remove ${describe(row)}?`)) return;
              try {
                await api(`${path}/${row.id}`, { method: 'DELETE' });
                refresh();
              } catch (error) {
                section.append(failure(error));
              }
            },
          }, 'Remove'),
        }], rows, (row) => ({ 'data-id': row.id })) : h('p', { class: 'muted' }, 'None.'),
        formFor({ spec, url: path, prefix: id, submitLabel: 'Add', done: () => refresh() }));
    } catch (error) {
      section.replaceChildren(h('h2', {}, title), failure(error));
    }
  };
  refresh();
  return section;
}

/** What an item page shows under its fields, by kind. */
const BELOW = {
  consumers: (entity) => {
    const base = `/consumers/${entity.id}`;
    return [
      subList({
        id: 'key-auth', title: 'API keys (key-auth)', path: `${base}/key-auth`, describe: (c) => `key ${c.id}`,
        columns: [{ title: 'Key', key: 'key', mono: true, cell: (c) => c.key }, { title: 'Tags', key: 'tags', cell: (c) => (c.tags || []).join(', ') }],
        spec: [['key', 'Key (empty: generated)', 'text'], ['tags', 'Tags', 'list']],
      }),
      subList({
        id: 'basic-auth', title: 'Usernames and passwords (basic-auth)', path: `${base}/basic-auth`, describe: (c) => `username ${c.username}`,
        columns: [{ title: 'Username', key: 'username', cell: (c) => c.username }],
        spec: [['username', 'Username', 'text'], ['password', 'Password', 'password']],
      }),
      subList({
        id: 'jwt', title: 'JWT credentials (jwt)', path: `${base}/jwt`, describe: (c) => `JWT key ${c.key}`,
        columns: [{ title: 'Key (iss)', key: 'key', mono: true, cell: (c) => c.key }, { title: 'Algorithm', key: 'algorithm', cell: (c) => c.algorithm }],
        spec: [['key', 'Key (empty: generated)', 'text'],
          ['algorithm', 'Algorithm', 'select', ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384']],
          ['secret', 'Secret (HS*; empty: generated)', 'password'], ['rsa_public_key', 'Public key (RS*, ES*; PEM)', 'textarea']],
      }),
      subList({
        id: 'acls', title: 'ACL groups (acl)', path: `${base}/acls`, describe: (c) => `group ${c.group}`,
        columns: [{ title: 'Group', key: 'group', cell: (c) => c.group }],
        spec: [['group', 'Group', 'text'], ['tags', 'Tags', 'list']],
      }),
    ];
  },
  upstreams: (entity) => [subList({
    id: 'targets', title: 'Targets', path: `/upstreams/${entity.id}/targets`, describe: (t) => `target ${t.target}`,
    columns: [{ title: 'Target', key: 'target', mono: true, cell: (t) => t.target }, { title: 'Weight', key: 'weight', cell: (t) => String(t.weight) }],
    spec: [['target', 'Target (host:port)', 'text'], ['weight', 'Weight', 'number'], ['tags', 'Tags', 'list']],
  })],
};

async function list(kind) {
  const spec = KINDS[kind];
  const query = new URLSearchParams(location.search);
  const offset = query.get('offset');
  const search = h('input', { id: 'search', type: 'search', placeholder: 'Name, id, tag…', value: query.get('q') || '' });
  const body = h('div', {});
  const creating = h('section', { id: 'new-entity', hidden: true, 'aria-label': `New ${spec.title.replace(/s$/, '').toLowerCase()}` });
  const open = FORMS[kind] || kind === 'plugins' ? h('button', {
    type: 'button', id: 'new', 'aria-expanded': 'false', 'aria-controls': 'new-entity',
    onclick: async () => {
      creating.hidden = !creating.hidden;
      open.setAttribute('aria-expanded', String(!creating.hidden));
      if (!creating.hidden && !creating.firstChild) {
        const done = (saved) => go(`/${kind}/${encodeURIComponent(spec.name(saved))}`);
        creating.append(h('h2', {}, `New ${spec.title.replace(/s$/, '').toLowerCase()}`));
        try {
          creating.append(kind === 'plugins' ? await pluginForm(null, done) : entityForm(kind, null, done));
        } catch (error) {
          creating.append(failure(error));
        }
      }
      if (!creating.hidden) creating.querySelector('input, select')?.focus();
    },
  }, `New ${spec.title.replace(/s$/, '').toLowerCase()}`) : null;
  page(spec.title,
    h('div', { class: 'toolbar' },
      h('div', { class: 'grow' }, h('label', { for: 'search' }, 'Search this page'), search), open),
    creating,
    body);
  let data;
  try {
    data = await api(`/${kind}?size=100${offset ? `&offset=${encodeURIComponent(offset)}` : ''}`);
  } catch (error) {
    body.replaceChildren(failure(error));
    return null;
  }
  const show = () => {
    const needle = search.value.trim().toLowerCase();
    const rows = data.data.filter((e) => !needle || JSON.stringify(e).toLowerCase().includes(needle));
    const columns = [
      { title: 'Name', key: 'name', cell: (e) => h('a', { href: `/${kind}/${encodeURIComponent(spec.name(e))}` }, spec.name(e)) },
      ...spec.columns.map(([title, cell]) => ({ title, key: title.toLowerCase(), cell })),
      { title: 'Tags', key: 'tags', cell: (e) => (e.tags || []).map((t) => badge(t)) },
    ];
    const pager = h('div', { class: 'pager' },
      offset ? h('a', { href: `/${kind}` }, 'First page') : null,
      data.next ? h('a', { href: `/${kind}?offset=${encodeURIComponent(data.offset)}`, rel: 'next' }, 'Next page') : null,
      h('span', { class: 'muted' }, `${rows.length} shown`));
    // The Admin API has no search: the page shown is filtered, and a name or id not on it can
    // still be looked up directly.
    const lookup = needle && !rows.some((e) => spec.name(e).toLowerCase() === needle || e.id === needle)
      ? h('p', { class: 'muted', id: 'lookup' }, 'Not on this page? ',
        h('a', { href: `/${kind}/${encodeURIComponent(search.value.trim())}` }, `Open “${search.value.trim()}” by its name or id`), '.')
      : null;
    body.replaceChildren(rows.length ? table(columns, rows, (e) => ({ 'data-id': e.id })) : h('p', { class: 'notice' }, 'Nothing here.'), lookup, pager);
  };
  search.addEventListener('input', show);
  show();
  return null;
}

async function item(kind, key) {
  const spec = KINDS[kind];
  // Drawn at once, filled when the entity arrives: if another page was asked for meanwhile, this
  // one is no longer in the document and what it draws goes nowhere.
  const holder = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  page(spec.title, holder);
  let entity;
  try {
    entity = await api(`/${kind}/${encodeURIComponent(key)}`);
  } catch (error) {
    holder.replaceChildren(error.status === 404 ? h('p', { class: 'notice' }, `No such entity: ${key}.`) : failure(error));
    return null;
  }
  if (!holder.isConnected) return null;
  const remove = h('button', {
    class: 'danger', type: 'button',
    onclick: async () => {
      if (!window.confirm(`Delete ${spec.name(entity)}?`)) return;
      try {
        await api(`/${kind}/${entity.id}`, { method: 'DELETE' });
        go(`/${kind}`);
      } catch (error) {
        main.append(failure(error));
      }
    },
  }, 'Delete');
  const editing = h('section', { id: 'edit-entity', hidden: true, 'aria-label': 'Edit' });
  const edit = FORMS[kind] || kind === 'plugins' ? h('button', {
    type: 'button', class: 'ghost', id: 'edit', 'aria-expanded': 'false', 'aria-controls': 'edit-entity',
    onclick: async () => {
      editing.hidden = !editing.hidden;
      edit.setAttribute('aria-expanded', String(!editing.hidden));
      if (!editing.hidden && !editing.firstChild) {
        const done = (saved) => {
          const path = `/${kind}/${encodeURIComponent(spec.name(saved))}`;
          if (path === location.pathname) show();
          else go(path);
        };
        try {
          editing.append(kind === 'plugins' ? await pluginForm(entity, done) : entityForm(kind, entity, done));
        } catch (error) {
          editing.append(failure(error));
        }
      }
    },
  }, 'Edit') : null;
  const title = `${spec.title.replace(/s$/, '')} ${spec.name(entity)}`;
  document.title = `${title} · gateway console`;
  main.querySelector('h1').textContent = title;
  holder.replaceChildren(
    h('p', {}, h('a', { href: `/${kind}` }, `All ${spec.title.toLowerCase()}`)),
    h('dl', { class: 'fields' }, Object.entries(entity).flatMap(([field, value]) => [
      h('dt', {}, field),
      h('dd', { class: typeof value === 'object' && value !== null ? 'mono' : null },
        value === null ? '—' : typeof value === 'object' ? JSON.stringify(value) : String(value)),
    ])),
    h('div', { class: 'toolbar' }, edit, remove),
    editing,
    ...(BELOW[kind] ? BELOW[kind](entity) : []));
  return null;
}

function notFound() {
  page('Not found', h('p', {}, 'The console has no page here. ', h('a', { href: '/' }, 'Back to the overview.')));
  return null;
}

const PAGES = [
  [/^\/$/, () => overview()],
  [/^\/data-planes\/?$/, () => (node.configuration.role === 'control_plane' ? dataPlanes() : notFound())],
  [/^\/certificates\/?$/, () => certificates()],
  [/^\/analytics\/?$/, () => analytics()],
  [/^\/data-planes\/new\/?$/, () => (node.configuration.role === 'control_plane' ? newDataPlane() : notFound())],
  [/^\/(services|routes|consumers|plugins|upstreams)\/?$/, (m) => list(m[1])],
  [/^\/(services|routes|consumers|plugins|upstreams)\/([^/]+)\/?$/, (m) => {
    let key;
    try {
      key = decodeURIComponent(m[2]);
    } catch {
      return notFound();
    }
    return item(m[1], key);
  }],
];

/** Which navigation is current: a page that finishes loading after another was asked for is
 *  stopped at once instead of drawn. */
let generation = 0;

async function show() {
  if (leave) leave();
  leave = null;
  const mine = ++generation;
  const path = location.pathname;
  for (const link of document.querySelectorAll('nav a')) {
    const href = link.getAttribute('href');
    const current = href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const found = PAGES.map(([pattern, render]) => [path.match(pattern), render]).find(([m]) => m);
  const stop = found ? await found[1](found[0]) : notFound();
  if (mine !== generation) {
    if (stop) stop();
    return;
  }
  leave = stop;
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== document.body) heading.focus();
}

function go(href) {
  history.pushState(null, '', href);
  show();
}

function theme() {
  const button = document.getElementById('theme');
  const root = document.documentElement;
  const saved = localStorage.getItem('theme');
  const dark = () => (root.dataset.theme || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light')) === 'dark';
  if (saved === 'dark' || saved === 'light') root.dataset.theme = saved;
  const label = () => {
    button.setAttribute('aria-pressed', String(dark()));
    button.textContent = 'Dark theme';
  };
  button.addEventListener('click', () => {
    root.dataset.theme = dark() ? 'light' : 'dark';
    localStorage.setItem('theme', root.dataset.theme);
    label();
  });
  label();
}

async function start() {
  theme();
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href^="/"]');
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(link.getAttribute('href'));
  });
  window.addEventListener('popstate', show);
  try {
    node = await api('/');
  } catch (error) {
    page('The Admin API cannot be reached', failure(error));
    return;
  }
  const role = node.configuration.role;
  const label = document.getElementById('node-role');
  label.textContent = ROLES[role] || role;
  label.hidden = false;
  for (const entry of document.querySelectorAll('nav [data-role]')) entry.hidden = entry.dataset.role !== role;
  await show();
  document.body.dataset.ready = 'true';
}

start();
