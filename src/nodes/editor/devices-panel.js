// The LwM2M sidebar: the devices of a running lwm2m-server (paged, searched and sorted by the
// runtime, so it works the same with ten devices or a hundred thousand) and a console per
// device: every LwM2M operation, live observed values, registration details and a message log.
(function () {
  var NS = '@lwm2m-red/node-red-lwm2m-server/lwm2m-server:lwm2m-server.sidebar.';
  function t(key, params) { return RED._(NS + key, params); }
  var api = RED.lwm2m.api;
  var FORMATS = [['auto', 'auto'], ['tlv', 'TLV'], ['senml-json', 'SenML JSON'], ['senml-cbor', 'SenML CBOR'], ['lwm2m-cbor', 'LwM2M CBOR'], ['lwm2m-json', 'LwM2M JSON'], ['text', 'text'], ['cbor', 'CBOR'], ['opaque', 'opaque']];
  var WATCH_EVERY_MS = 20000;
  var LOG_SHOWN = 100;
  // One id per open editor: the runtime records and sends what this editor looks at, and forgets it when the editor stops asking.
  var client = 'editor-' + Math.random().toString(36).slice(2, 12);

  var state = {
    server: null,
    query: { search: '', match: 'prefix', sort: 'endpoint', order: 'asc' },
    cursor: {},
    page: null,
    device: null,
    details: null,
    log: [],
    // Object definitions by server, object id and version, fetched once.
    models: {},
    // Results shown in place: path -> text, for the open device.
    values: {},
    expanded: {},
    present: {}
  };

  function canWrite() {
    return !RED.user || !RED.user.hasPermission || RED.user.hasPermission('lwm2m-server.write');
  }
  function serverUrl(path) { return api('servers/' + encodeURIComponent(state.server) + '/' + path); }
  function deviceUrl(path) { return serverUrl('devices/' + encodeURIComponent(state.device) + (path ? '/' + path : '')); }
  function errorText(xhr) { return (xhr.responseJSON && xhr.responseJSON.error) || xhr.statusText || t('failed'); }
  function show(value) {
    if (value === undefined) return '';
    if (value && typeof value === 'object') {
      if (value.hex !== undefined && Object.keys(value).length === 1) return '0x' + value.hex;
      return JSON.stringify(value);
    }
    return String(value);
  }
  function since(time) {
    var seconds = Math.max(0, Math.round((Date.now() - time) / 1000));
    if (seconds < 60) return t('secondsAgo', { count: seconds });
    if (seconds < 3600) return t('minutesAgo', { count: Math.floor(seconds / 60) });
    return new Date(time).toLocaleString();
  }
  function button(action, icon, title, handler) {
    return $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-do-' + action + '"><i class="fa ' + icon + '"></i></button>')
      .attr('title', title)
      .on('click', function (event) { event.stopPropagation(); handler(); });
  }
  function post(path, body) {
    return $.ajax({ url: deviceUrl(path), method: 'POST', contentType: 'application/json', data: JSON.stringify(body), dataType: 'json' });
  }

  // ---- Layout ------------------------------------------------------------------------------

  var root = $('<div class="lwm2m-panel"></div>');
  var listView = $('<div class="lwm2m-list-view"></div>').appendTo(root);
  var serverSelect = $('<select class="lwm2m-server-select"></select>').appendTo(listView);
  var searchRow = $('<div class="lwm2m-toolbar"></div>').appendTo(listView);
  var search = $('<input type="text" class="lwm2m-search">').attr('placeholder', t('search')).appendTo(searchRow);
  var match = $('<select class="lwm2m-match"></select>').appendTo(searchRow);
  [['prefix', t('prefix')], ['substring', t('substring')]].forEach(function (o) { $('<option/>').val(o[0]).text(o[1]).appendTo(match); });
  var sortRow = $('<div class="lwm2m-toolbar"></div>').appendTo(listView);
  var sort = $('<select class="lwm2m-sort"></select>').appendTo(sortRow);
  [['endpoint', t('sortEndpoint')], ['registeredAt', t('sortRegistered')], ['lastSeen', t('sortLastSeen')]].forEach(function (o) { $('<option/>').val(o[0]).text(o[1]).appendTo(sort); });
  var order = button('order', 'fa-sort-amount-asc', t('order'), function () {
    state.query.order = state.query.order === 'asc' ? 'desc' : 'asc';
    order.find('i').toggleClass('fa-sort-amount-asc fa-sort-amount-desc');
    firstPage();
  }).appendTo(sortRow);
  var pager = $('<div class="lwm2m-pager"></div>').appendTo(listView);
  var pageText = $('<span class="lwm2m-page-text"></span>').appendTo(pager);
  var previous = button('previous', 'fa-chevron-left', t('previous'), function () { loadPage({ before: state.page && state.page.previous }); }).appendTo(pager);
  var next = button('next', 'fa-chevron-right', t('next'), function () { loadPage({ after: state.page && state.page.next }); }).appendTo(pager);
  var rows = $('<div class="lwm2m-device-list"></div>').appendTo(listView);
  var consoleView = $('<div class="lwm2m-console"></div>').appendTo(root).hide();

  // ---- Servers and the devices list --------------------------------------------------------

  function loadServers() {
    $.getJSON(api('servers')).done(function (servers) {
      var current = state.server;
      serverSelect.empty();
      servers.forEach(function (s) {
        $('<option/>').val(s.id).text((s.name || s.id) + ' · ' + (s.status && s.status.text ? s.status.text : '')).appendTo(serverSelect);
      });
      if (servers.length === 0) {
        state.server = null;
        rows.empty().append($('<p class="lwm2m-empty"/>').text(t('noServers')));
        pageText.text('');
        closeDevice();
        return;
      }
      state.server = current && servers.some(function (s) { return s.id === current; }) ? current : servers[0].id;
      serverSelect.val(state.server);
      if (state.device) openDevice(state.device);
      else loadPage(state.cursor);
    });
  }

  function firstPage() { loadPage({}); }

  function loadPage(cursor) {
    if (!state.server) return;
    state.cursor = cursor || {};
    var query = $.extend({}, state.query, state.cursor);
    $.getJSON(serverUrl('devices'), query).done(renderPage).fail(function (xhr) { rows.empty().append($('<p class="lwm2m-empty"/>').text(errorText(xhr))); });
  }

  function renderPage(page) {
    state.page = page;
    rows.empty();
    if (page.total === 0) rows.append($('<p class="lwm2m-empty"/>').text(state.query.search ? t('noMatch') : t('noDevices')));
    var from = page.items.length ? page.offset + 1 : 0;
    pageText.text(t('page', { from: from, to: page.offset + page.items.length, count: page.total }));
    previous.prop('disabled', !page.previous);
    next.prop('disabled', !page.next);
    page.items.forEach(function (device) { deviceRow(device).appendTo(rows); });
    watch();
  }

  function deviceRow(device) {
    var row = $('<div class="lwm2m-device"></div>').attr('data-endpoint', device.endpoint).on('click', function () { openDevice(device.endpoint); });
    var head = $('<div class="lwm2m-row-head"></div>').appendTo(row);
    $('<span class="lwm2m-endpoint"></span>').text(device.endpoint).attr('title', device.endpoint).appendTo(head);
    if (device.queueMode) $('<span class="lwm2m-badge"></span>').addClass(device.awake ? 'lwm2m-awake' : 'lwm2m-sleeping').text(device.awake ? t('awake') : t('sleeping')).appendTo(head);
    $('<div class="lwm2m-meta"></div>')
      .text(device.address + ':' + device.port + ' · ' + (device.transport === 'udp' ? '' : device.transport.toUpperCase() + ' ') + device.security + ' · ' + device.binding + ' · LwM2M ' + device.lwm2mVersion + ' · ' + t('lastSeen', { time: since(device.lastSeen) }))
      .appendTo(row);
    return row;
  }

  var searchTimer;
  search.on('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { state.query.search = search.val().trim(); firstPage(); }, 200);
  });
  match.on('change', function () { state.query.match = match.val(); firstPage(); });
  sort.on('change', function () { state.query.sort = sort.val(); firstPage(); });
  serverSelect.on('change', function () { state.server = serverSelect.val(); closeDevice(); firstPage(); });

  // ---- The runtime watches what this editor shows ------------------------------------------

  var watchTimer;
  function watch() {
    clearTimeout(watchTimer);
    if (!state.server) return;
    var visible = root.is(':visible');
    var endpoints = visible && !state.device && state.page ? state.page.items.map(function (d) { return d.endpoint; }) : [];
    var body = visible ? { client: client, endpoints: endpoints, device: state.device || '' } : { client: client, endpoints: null };
    $.ajax({ url: serverUrl('watch'), method: 'POST', contentType: 'application/json', data: JSON.stringify(body) });
    if (visible) watchTimer = setTimeout(watch, WATCH_EVERY_MS);
  }

  var refreshTimer;
  RED.comms.subscribe('lwm2m-red/devices/#', function (topic, delta) {
    if (topic !== 'lwm2m-red/devices/' + state.server || state.device || !state.page) return;
    delta.changed.forEach(function (device) {
      var row = rows.find('.lwm2m-device').filter(function () { return $(this).attr('data-endpoint') === device.endpoint; });
      if (row.length) row.replaceWith(deviceRow(device));
    });
    // Devices came or went: the page is fetched again, at most once a second.
    if ((delta.listChanged || delta.removed.length) && !refreshTimer) {
      refreshTimer = setTimeout(function () { refreshTimer = undefined; loadPage(state.cursor); }, 1000);
    }
  });
  RED.comms.subscribe('lwm2m-red/console/#', function (topic, delta) {
    if (topic !== 'lwm2m-red/console/' + state.server || delta.endpoint !== state.device) return;
    delta.log.forEach(addLogEntry);
    delta.values.forEach(function (update) {
      if (update.ended) return observationEnded(update.observation, update.ended);
      showObserved(update.path, update.value);
      consoleView.find('.lwm2m-observation').filter(function () { return $(this).attr('data-id') === update.observation; })
        .find('.lwm2m-observation-value').text(show(update.value));
    });
    if (delta.details) refreshDetails();
  });

  // ---- The device console -------------------------------------------------------------------

  var header = $('<div class="lwm2m-console-head"></div>').appendTo(consoleView);
  button('back', 'fa-arrow-left', t('back'), function () { closeDevice(); }).appendTo(header);
  var title = $('<span class="lwm2m-console-endpoint"></span>').appendTo(header);
  var removeButton = button('remove', 'fa-trash', t('remove'), function () { removeForm.toggle(); }).appendTo(header);
  // De-register: asks first, and may forget the DTLS identity the name is bound to.
  var removeForm = $('<div class="lwm2m-form lwm2m-remove-form"></div>').appendTo(consoleView).hide();
  var removeText = $('<div class="lwm2m-meta"></div>').appendTo(removeForm);
  var forget = $('<input type="checkbox" class="lwm2m-forget" style="width: auto; margin: 0 4px 0 0">');
  $('<label style="width: auto; font-size: 12px"></label>').append(forget).append($('<span class="lwm2m-forget-text"></span>')).appendTo(removeForm);
  $('<div class="lwm2m-form-buttons"></div>').appendTo(removeForm)
    .append($('<button type="button" class="red-ui-button red-ui-button-small lwm2m-confirm-remove"></button>').text(t('remove')).on('click', removeDevice))
    .append($('<button type="button" class="red-ui-button red-ui-button-small"></button>').text(t('close')).on('click', function () { removeForm.hide(); }));
  var result = $('<div class="lwm2m-result"></div>').appendTo(consoleView);
  var detailsBox = section('details', t('registration'), true);
  var objectsBox = section('objects', t('objects'), true);
  var formatRow = $('<div class="lwm2m-toolbar"></div>').prependTo(objectsBox);
  $('<label></label>').text(t('format')).appendTo(formatRow);
  var formatSelect = $('<select class="lwm2m-format"></select>').appendTo(formatRow);
  FORMATS.forEach(function (f) { $('<option/>').val(f[0]).text(f[1]).appendTo(formatSelect); });
  var tree = $('<div class="lwm2m-tree"></div>').appendTo(objectsBox);
  var observationsBox = section('observations', t('observations'), true);
  var logBox = section('log', t('log'), false);
  var logToolbar = $('<div class="lwm2m-toolbar"></div>').appendTo(logBox);
  var logState = $('<span class="lwm2m-log-state"></span>').appendTo(logToolbar);
  button('clear-log', 'fa-trash-o', t('clearLog'), function () { state.log = []; logList.empty(); }).appendTo(logToolbar);
  var logList = $('<div class="lwm2m-log"></div>').appendTo(logBox);

  function section(name, label, open) {
    var box = $('<div class="lwm2m-section"></div>').addClass('lwm2m-section-' + name).appendTo(consoleView);
    var head = $('<div class="lwm2m-section-head"></div>').appendTo(box);
    $('<i class="fa"></i>').addClass(open ? 'fa-caret-down' : 'fa-caret-right').appendTo(head);
    $('<span></span>').text(' ' + label).appendTo(head);
    var body = $('<div class="lwm2m-section-body"></div>').appendTo(box).toggle(open);
    head.on('click', function () {
      body.toggle();
      head.find('i').toggleClass('fa-caret-down fa-caret-right');
    });
    return body;
  }

  function say(text, failed) {
    result.text(text).toggleClass('lwm2m-failed', !!failed);
  }

  function openDevice(endpoint) {
    if (state.device !== endpoint) {
      state.values = {};
      state.expanded = {};
      state.present = {};
      state.log = [];
      logList.empty();
      tree.empty();
      say('');
    }
    state.device = endpoint;
    listView.hide();
    consoleView.show();
    title.text(endpoint).attr('title', endpoint);
    removeButton.toggle(canWrite());
    removeForm.hide();
    forget.prop('checked', false);
    removeText.text(t('removeConfirm', { endpoint: endpoint }));
    removeForm.find('.lwm2m-forget-text').text(t('forget', { endpoint: endpoint }));
    refreshDetails();
    watch();
    $.getJSON(deviceUrl('log')).done(function (answer) {
      logState.text(answer.recording ? t('recording') : t('notRecording'));
      logList.empty();
      state.log = [];
      answer.entries.forEach(addLogEntry);
    });
  }

  function removeDevice() {
    var endpoint = state.device;
    var forgetIdentity = forget.is(':checked');
    $.ajax({ url: deviceUrl('') + '?forgetIdentity=' + forgetIdentity, method: 'DELETE', dataType: 'json' })
      .done(function (answer) {
        removeForm.hide();
        RED.notify(t(answer.unbound ? 'unbound' : 'removed', { endpoint: endpoint }), 'success');
        closeDevice();
      })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  function closeDevice() {
    if (!state.device) return;
    state.device = null;
    state.details = null;
    consoleView.hide();
    listView.show();
    loadPage(state.cursor);
  }

  function refreshDetails() {
    if (!state.device) return;
    $.getJSON(deviceUrl('')).done(function (details) {
      state.details = details;
      renderDetails(details);
      renderTree(details);
      renderObservations(details);
    }).fail(function (xhr) {
      say(errorText(xhr), true);
      detailsBox.empty().append($('<p class="lwm2m-empty"/>').text(t('gone')));
    });
  }

  function renderDetails(d) {
    detailsBox.empty();
    var table = $('<table class="lwm2m-details"></table>').appendTo(detailsBox);
    function line(key, value, tip) {
      var tr = $('<tr class="lwm2m-detail"></tr>').attr('data-key', key).appendTo(table);
      $('<th></th>').text(t('detail.' + key)).appendTo(tr);
      $('<td></td>').text(value).attr('title', tip || value).appendTo(tr);
    }
    var summary = d.summary;
    line('registeredAt', new Date(d.registeredAt).toLocaleString());
    line('lastSeen', since(summary.lastSeen), new Date(summary.lastSeen).toISOString());
    line('lastUpdate', new Date(d.lastUpdate).toLocaleString());
    line('lifetime', t('lifetime', { lifetime: d.lifetime, expires: new Date(d.expiresAt).toLocaleTimeString() }));
    line('binding', d.binding + (d.queueMode ? ' · ' + (d.awake ? t('awake') : t('sleeping')) : ''));
    line('queued', String(d.queued));
    line('address', d.address + ':' + d.port + ' (' + d.transport + ')');
    line('security', d.security + (d.identity ? ' · ' + d.identity : ''));
    line('version', 'LwM2M ' + d.lwm2mVersion + (d.rootPath !== '/' ? ' · ' + d.rootPath : ''));
    line('formats', d.contentFormats.join(', ') || '-');
    line('objectVersions', d.objects.map(function (o) { return o.id + '@' + (o.version || o.modelVersion || '?') + (o.version ? '' : '*'); }).join(' '), t('objectVersionsTip'));
    line('location', d.location);
  }

  function renderObservations(d) {
    observationsBox.empty();
    if (d.observations.length === 0) observationsBox.append($('<p class="lwm2m-empty"/>').text(t('noObservations')));
    d.observations.forEach(function (o) {
      var row = $('<div class="lwm2m-observation"></div>').attr('data-id', o.id).appendTo(observationsBox);
      var head = $('<div class="lwm2m-row-head"></div>').appendTo(row);
      $('<span class="lwm2m-name"></span>').text(o.paths.join(', ') + (o.byConsole ? '' : ' (' + t('byFlow') + ')')).appendTo(head);
      var actions = $('<span class="lwm2m-actions"></span>').appendTo(head);
      if (canWrite()) button('cancel', 'fa-eye-slash', t('cancel'), function () { cancelObservation(o.id); }).appendTo(actions);
      $('<div class="lwm2m-observation-value lwm2m-value"></div>').text(o.value === undefined ? '' : show(o.value)).appendTo(row);
      if (o.value !== undefined) o.paths.forEach(function (p) { showObserved([p], o.value); });
    });
  }

  function observationEnded(id, reason) {
    consoleView.find('.lwm2m-observation').filter(function () { return $(this).attr('data-id') === id; }).remove();
    say(t('observationEnded', { reason: reason }));
    refreshDetails();
  }

  // ---- Object tree --------------------------------------------------------------------------

  /** Object definitions, fetched once per server, object id and version. */
  function model(objectId, version, done) {
    var key = state.server + '/' + objectId + '@' + (version || '');
    if (state.models[key]) return done(state.models[key]);
    $.getJSON(serverUrl('objects/' + objectId), { version: version || '' })
      .done(function (definition) { state.models[key] = definition; done(definition); })
      .fail(function () { state.models[key] = { id: objectId, name: t('unknownObject'), resources: [] }; done(state.models[key]); });
  }

  function renderTree(d) {
    var open = tree.find('.lwm2m-object').length > 0;
    if (open) {
      // Already drawn for this device: refresh the instance lists only when they changed.
      var known = tree.find('.lwm2m-object').map(function () { return $(this).attr('data-path') + '=' + $(this).attr('data-instances'); }).get().join(' ');
      var now = d.objects.map(function (o) { return '/' + o.id + '=' + o.instances.join(','); }).join(' ');
      if (known === now) return;
      tree.empty();
    }
    d.objects.forEach(function (object) {
      var node = $('<div class="lwm2m-object"></div>').attr('data-path', '/' + object.id).attr('data-instances', object.instances.join(',')).appendTo(tree);
      model(object.id, object.modelVersion || object.version, function (definition) { objectRow(node, object, definition); });
    });
  }

  function valueLine(row, path) {
    return $('<div class="lwm2m-value"></div>').text(state.values[path] || '').appendTo(row);
  }

  function objectRow(node, object, definition) {
    var path = '/' + object.id;
    var shown = object.version || definition.version;
    var modelVersion = definition.version && definition.version !== shown ? ' ' + t('modelVersion', { version: definition.version }) : '';
    var row = rowHead(node, path, path + ' ' + (definition.name || t('unknownObject')) + (shown ? ' v' + shown : '') + modelVersion, true);
    var actions = row.find('.lwm2m-actions');
    readButtons(actions, path, null);
    if (canWrite() && definition.multiple !== false) button('create', 'fa-plus', t('create'), function () { createForm(node, path, definition); }).appendTo(actions);
    valueLine(node, path);
    var children = $('<div class="lwm2m-children"></div>').appendTo(node).toggle(!!state.expanded[path]);
    object.instances.forEach(function (instance) { instanceRow(children, object, definition, instance); });
  }

  function instanceRow(container, object, definition, instance) {
    var path = '/' + object.id + '/' + instance;
    var node = $('<div class="lwm2m-instance"></div>').attr('data-path', path).appendTo(container);
    var row = rowHead(node, path, path, true, function (expanded) { if (expanded) discoverInstance(path, resources, definition); });
    var actions = row.find('.lwm2m-actions');
    readButtons(actions, path, null);
    if (canWrite()) {
      button('write', 'fa-pencil', t('write'), function () { instanceForm(node, path, definition); }).appendTo(actions);
      button('delete', 'fa-trash', t('delete'), function () { run('delete', { path: path }, t('deleted', { path: path }), refreshDetails); }).appendTo(actions);
    }
    valueLine(node, path);
    var resources = $('<div class="lwm2m-children"></div>').appendTo(node).toggle(!!state.expanded[path]);
    if (state.expanded[path]) discoverInstance(path, resources, definition);
  }

  /** Discover tells which resources the device has (and their attributes); the model alone lists them all. */
  function discoverInstance(path, container, definition) {
    function fill() {
      container.empty();
      var present = state.present[path];
      definition.resources.forEach(function (resource) {
        if (present && !present[resource.id]) return;
        resourceRow(container, path + '/' + resource.id, resource, present && present[resource.id]);
      });
    }
    fill();
    $.getJSON(deviceUrl('discover'), { path: path }).done(function (answer) {
      var present = {};
      answer.links.forEach(function (link) {
        var id = link.path.split('/')[3];
        if (id !== undefined && link.path.split('/').length === 4) present[id] = link.attributes;
      });
      state.present[path] = present;
      fill();
    });
  }

  function resourceRow(container, path, resource, attributes) {
    var node = $('<div class="lwm2m-resource"></div>').attr('data-path', path).appendTo(container);
    var label = path.split('/').pop() + ' ' + resource.name + (resource.units ? ' (' + resource.units + ')' : '');
    var row = rowHead(node, path, label, resource.multiple);
    row.find('.lwm2m-name').attr('title', resource.name + ' · ' + resource.type + (resource.description ? '\n' + resource.description : ''));
    $('<span class="lwm2m-type"></span>').text(resource.type).insertAfter(row.find('.lwm2m-name'));
    var actions = row.find('.lwm2m-actions');
    var ops = resource.operations || '';
    if (ops.indexOf('R') >= 0) readButtons(actions, path, resource);
    if (canWrite() && ops.indexOf('W') >= 0) button('write', 'fa-pencil', t('write'), function () { writeForm(node, path, resource); }).appendTo(actions);
    if (canWrite() && ops.indexOf('E') >= 0) button('execute', 'fa-play', t('execute'), function () { executeForm(node, path); }).appendTo(actions);
    if (attributes && Object.keys(attributes).length) $('<div class="lwm2m-meta lwm2m-attributes-shown"></div>').text(Object.keys(attributes).map(function (k) { return k + '=' + attributes[k]; }).join(' ')).appendTo(node);
    valueLine(node, path);
    if (resource.multiple) $('<div class="lwm2m-children"></div>').appendTo(node).toggle(!!state.expanded[path]);
  }

  function rowHead(node, path, text, expandable, onToggle) {
    var head = $('<div class="lwm2m-row-head"></div>').appendTo(node);
    if (expandable) {
      $('<i class="fa lwm2m-caret"></i>').addClass(state.expanded[path] ? 'fa-caret-down' : 'fa-caret-right').appendTo(head);
      head.addClass('lwm2m-expandable').on('click', function () {
        state.expanded[path] = !state.expanded[path];
        head.find('.lwm2m-caret').toggleClass('fa-caret-down fa-caret-right');
        node.children('.lwm2m-children').toggle(!!state.expanded[path]);
        if (onToggle) onToggle(state.expanded[path]);
      });
    }
    $('<span class="lwm2m-name"></span>').text(text).attr('title', text).appendTo(head);
    $('<span class="lwm2m-actions"></span>').appendTo(head);
    return head;
  }

  /** Read, observe (or cancel), discover and write-attributes: at every level. */
  /** resource: the model's resource for a resource row, null for an object or instance. */
  function readButtons(actions, path, resource) {
    button('read', 'fa-download', t('read'), function () { read(path); }).appendTo(actions);
    if (canWrite()) {
      button('observe', 'fa-eye', t('observe'), function () { observe(path); }).appendTo(actions);
      button('attributes', 'fa-sliders', t('attributes'), function () { attributesForm(actions.closest('.lwm2m-object, .lwm2m-instance, .lwm2m-resource'), path, resource); }).appendTo(actions);
    }
    button('discover', 'fa-search', t('discover'), function () { discover(path); }).appendTo(actions);
  }

  // ---- Operations ---------------------------------------------------------------------------

  function format() { var f = formatSelect.val(); return f === 'auto' ? '' : f; }

  function setValue(path, text) {
    state.values[path] = text;
    tree.find('[data-path]').filter(function () { return $(this).attr('data-path') === path; }).children('.lwm2m-value').text(text);
  }

  /** A read or notification of a path: its own row, and every row below it whose value came along. */
  function showValues(path, payload) {
    if (payload === null || typeof payload !== 'object' || payload.hex !== undefined) return setValue(path, show(payload));
    var own = tree.find('.lwm2m-resource').filter(function () { return $(this).attr('data-path') === path; });
    if (own.length) {
      // A multiple resource: its value, and a row per instance.
      setValue(path, show(payload));
      return resourceInstances(own, path, payload);
    }
    setValue(path, '');
    Object.keys(payload).forEach(function (id) { showValues(path + '/' + id, payload[id]); });
  }

  /** The instances of a multiple resource, each readable on its own. */
  function resourceInstances(row, path, values) {
    state.expanded[path] = true;
    row.find('> .lwm2m-row-head .lwm2m-caret').removeClass('fa-caret-right').addClass('fa-caret-down');
    var children = row.children('.lwm2m-children').empty().show();
    Object.keys(values).forEach(function (id) {
      var instancePath = path + '/' + id;
      var node = $('<div class="lwm2m-resource-instance"></div>').attr('data-path', instancePath).appendTo(children);
      var head = rowHead(node, instancePath, '[' + id + ']', false);
      button('read', 'fa-download', t('read'), function () { read(instancePath); }).appendTo(head.find('.lwm2m-actions'));
      state.values[instancePath] = show(values[id]);
      valueLine(node, instancePath);
    });
  }

  function showObserved(paths, value) {
    paths.forEach(function (p) { showValues(p, value); });
  }

  /** Reads a path into its rows; quietly after a write, so the write's answer stays on show. */
  function read(path, quiet) {
    if (!quiet) say(t('reading', { path: path }));
    $.getJSON(deviceUrl('read'), { path: path, format: format() })
      .done(function (answer) { showValues(path, answer.payload); if (!quiet) say(answer.code + ' ' + t('read') + ' ' + path); })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  function discover(path) {
    $.getJSON(deviceUrl('discover'), { path: path })
      .done(function (answer) {
        setValue(path, answer.links.map(function (l) {
          var attributes = Object.keys(l.attributes).map(function (k) { return k + '=' + l.attributes[k]; }).join(';');
          return '<' + l.path + '>' + (attributes ? ';' + attributes : '');
        }).join(','));
        say(answer.code + ' ' + t('discover') + ' ' + path);
      })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  function observe(path) {
    say(t('observing', { path: path }));
    post('observe', { path: path, format: format() })
      .done(function (answer) {
        showValues(path, answer.payload);
        say(answer.code + ' ' + (answer.observation ? t('observed', { path: path }) : t('notObservable', { path: path })));
        refreshDetails();
      })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  function cancelObservation(id) {
    post('cancel', { observation: id })
      .done(function () { say(t('cancelled')); refreshDetails(); })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  function run(operation, body, done, after) {
    post(operation, body)
      .done(function (answer) { say(answer.code + ' ' + (typeof done === 'string' ? done : '')); if (after) after(answer); })
      .fail(function (xhr) { say(errorText(xhr), true); });
  }

  // ---- Forms --------------------------------------------------------------------------------

  /** One form at a time, under the row it belongs to. */
  function form(node, submitLabel, onSubmit) {
    tree.find('.lwm2m-form').remove();
    var box = $('<div class="lwm2m-form"></div>');
    var head = node.children('.lwm2m-row-head');
    box.insertAfter(head);
    var fields = $('<div class="lwm2m-fields"></div>').appendTo(box);
    var buttons = $('<div class="lwm2m-form-buttons"></div>').appendTo(box);
    $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-submit"></button>').text(submitLabel).appendTo(buttons).on('click', function () { onSubmit(fields); box.remove(); });
    $('<button type="button" class="red-ui-button red-ui-button-small lwm2m-cancel-form"></button>').text(t('close')).appendTo(buttons).on('click', function () { box.remove(); });
    return fields;
  }

  /** An input fitting the resource's type: numbers, a true/false choice, a date, hex for bytes, text otherwise. */
  function typedInput(container, resource, label, path) {
    var row = $('<div class="lwm2m-field"></div>').appendTo(container);
    $('<label></label>').text(label).attr('title', resource.name + ' · ' + resource.type).appendTo(row);
    var input;
    if (resource.type === 'boolean') {
      input = $('<select></select>');
      ['', 'true', 'false'].forEach(function (v) { $('<option/>').val(v).text(v).appendTo(input); });
    } else if (resource.type === 'time') {
      input = $('<input type="datetime-local" step="1">');
    } else if (resource.type === 'integer' || resource.type === 'unsigned' || resource.type === 'float') {
      input = $('<input type="number">').attr('step', resource.type === 'float' ? 'any' : '1');
      if (resource.type === 'unsigned') input.attr('min', '0');
    } else {
      input = $('<input type="text">').attr('placeholder', resource.type === 'opaque' ? t('hexPlaceholder') : resource.type === 'objlnk' ? '3:0' : '');
    }
    input.addClass('lwm2m-input').attr('data-path', path).attr('data-type', resource.type).appendTo(row);
    return input;
  }

  /** The value an input holds, as the runtime takes it; undefined when left empty. */
  function inputValue(input) {
    var text = input.val();
    if (text === '' || text === null || text === undefined) return undefined;
    switch (input.attr('data-type')) {
      case 'integer': case 'unsigned': case 'float': return Number(text);
      case 'boolean': return text === 'true';
      case 'time': return new Date(text).toISOString();
      case 'opaque': return { hex: text.replace(/^0x/, '').replace(/\s+/g, '') };
      default: return text;
    }
  }

  function writeForm(node, path, resource) {
    var fields = form(node, t('write'), function () {
      var value;
      if (resource.multiple) {
        value = {};
        fields.find('.lwm2m-multi-row').each(function () {
          var id = $(this).find('.lwm2m-instance-id').val();
          var v = inputValue($(this).find('.lwm2m-input'));
          if (id !== '' && v !== undefined) value[id] = v;
        });
      } else value = inputValue(fields.find('.lwm2m-input'));
      if (value === undefined) return say(t('nothingToWrite'), true);
      run('write', { path: path, value: value, format: format() }, t('written', { path: path }), function () { read(path, true); });
    });
    if (!resource.multiple) return typedInput(fields, resource, resource.name, path).focus();
    // Multiple instances: one line per instance id, more can be added.
    function line(id, value) {
      var row = $('<div class="lwm2m-multi-row"></div>').appendTo(list);
      $('<input type="number" min="0" class="lwm2m-instance-id">').val(id).appendTo(row);
      var input = typedInput(row, resource, '=', path + '/' + id);
      if (value !== undefined) input.val(value && value.hex !== undefined ? value.hex : value);
    }
    var list = $('<div class="lwm2m-multi"></div>').appendTo(fields);
    var current = state.values[path] ? safeParse(state.values[path]) : null;
    if (current && typeof current === 'object') Object.keys(current).forEach(function (id) { line(id, current[id]); });
    else line(0);
    button('add-instance', 'fa-plus', t('addInstance'), function () { line(list.children().length); }).appendTo(fields);
  }

  function safeParse(text) { try { return JSON.parse(text); } catch (e) { return null; } }

  /** The resources a form's inputs hold, by resource id (the empty ones left out). */
  function resourceValues(fields) {
    var value = {};
    fields.find('.lwm2m-input').each(function () {
      var v = inputValue($(this));
      if (v !== undefined) value[$(this).attr('data-path').split('/').pop()] = v;
    });
    return value;
  }

  function instanceForm(node, path, definition) {
    var fields = form(node, t('write'), function () {
      var value = resourceValues(fields);
      if (Object.keys(value).length === 0) return say(t('nothingToWrite'), true);
      run('write', { path: path, value: value, mode: fields.find('.lwm2m-mode').val(), format: format() }, t('written', { path: path }), function () { read(path, true); });
    });
    var mode = $('<select class="lwm2m-mode"></select>').appendTo($('<div class="lwm2m-field"></div>').append($('<label></label>').text(t('mode'))).appendTo(fields));
    [['update', t('modeUpdate')], ['replace', t('modeReplace')]].forEach(function (m) { $('<option/>').val(m[0]).text(m[1]).appendTo(mode); });
    definition.resources.forEach(function (resource) {
      if ((resource.operations || '').indexOf('W') >= 0 && !resource.multiple) typedInput(fields, resource, resource.id + ' ' + resource.name, path + '/' + resource.id);
    });
  }

  function createForm(node, path, definition) {
    var fields = form(node, t('create'), function () {
      run('create', { path: path, instanceId: fields.find('.lwm2m-new-instance').val(), value: resourceValues(fields), format: format() }, t('created', { path: path }), function (answer) {
        say(answer.code + ' ' + t('created', { path: answer.location || path }));
        refreshDetails();
      });
    });
    $('<input type="number" min="0" max="65534" class="lwm2m-new-instance">').attr('placeholder', t('firstFree'))
      .appendTo($('<div class="lwm2m-field"></div>').append($('<label></label>').text(t('instanceId'))).appendTo(fields));
    definition.resources.forEach(function (resource) {
      if (((resource.operations || '').indexOf('W') >= 0 || resource.mandatory) && !resource.multiple && resource.type !== 'none') {
        typedInput(fields, resource, resource.id + ' ' + resource.name + (resource.mandatory ? ' *' : ''), path + '/0/' + resource.id);
      }
    });
  }

  function executeForm(node, path) {
    var fields = form(node, t('execute'), function () {
      run('execute', { path: path, args: fields.find('.lwm2m-args').val() }, t('executed', { path: path }));
    });
    $('<input type="text" class="lwm2m-args">').attr('placeholder', t('argsPlaceholder')).appendTo($('<div class="lwm2m-field"></div>').append($('<label></label>').text(t('arguments'))).appendTo(fields)).focus();
  }

  /**
   * Write-Attributes: every attribute the runtime accepts for this device and path (empty ones left out):
   * those of the device's LwM2M version, thresholds on numeric resources, edge on boolean ones.
   */
  function attributesForm(node, path, resource) {
    var fields = form(node, t('attributes'), function () {
      var attributes = {};
      fields.find('.lwm2m-attribute').each(function () {
        if ($(this).val() !== '') attributes[$(this).attr('data-name')] = Number($(this).val());
      });
      if (Object.keys(attributes).length === 0) return say(t('nothingToWrite'), true);
      run('attributes', { path: path, attributes: attributes }, t('attributesWritten', { path: path }), function () { discover(path); });
    });
    var version = state.details ? state.details.lwm2mVersion : '1.0';
    var type = resource ? resource.type : null;
    RED.lwm2m.attributes.forEach(function (name) {
      if (!RED.lwm2m.attributeApplies(name, version, type)) return;
      $('<input type="number" step="any" class="lwm2m-attribute">').attr('data-name', name)
        .appendTo($('<div class="lwm2m-field"></div>').append($('<label></label>').text(name)).appendTo(fields));
    });
  }

  // ---- Message log --------------------------------------------------------------------------

  function addLogEntry(entry) {
    state.log.push(entry);
    if (state.log.length > LOG_SHOWN) {
      state.log.shift();
      logList.children().first().remove();
    }
    var time = new Date(entry.time);
    var stamp = time.toLocaleTimeString() + '.' + String(time.getMilliseconds()).padStart(3, '0');
    var row = $('<div class="lwm2m-log-entry"></div>').addClass(entry.direction === 'in' ? 'lwm2m-log-in' : 'lwm2m-log-out').appendTo(logList);
    var line = [stamp, entry.direction === 'in' ? '←' : '→', entry.type, entry.code || t('empty'), entry.path || '', entry.observe !== undefined ? 'obs=' + entry.observe : '', entry.elapsedMs !== undefined ? '+' + entry.elapsedMs + ' ms' : ''].filter(Boolean).join(' ');
    $('<div class="lwm2m-log-line"></div>').text(line).appendTo(row);
    var detail = [entry.messageId !== undefined ? 'mid=' + entry.messageId : '', entry.token ? 'tkn=' + entry.token : '', entry.query ? '?' + entry.query.join('&') : '', entry.contentFormat ? 'cf=' + entry.contentFormat : '', entry.accept ? 'accept=' + entry.accept : '', entry.block1 ? 'b1=' + entry.block1 : '', entry.block2 ? 'b2=' + entry.block2 : '', entry.size ? entry.size + ' B' : ''].filter(Boolean).join(' ');
    $('<div class="lwm2m-meta"></div>').text(detail).appendTo(row);
    if (entry.payload) $('<div class="lwm2m-log-payload"></div>').text(entry.payload).appendTo(row);
  }

  // ---- The sidebar tab ----------------------------------------------------------------------

  RED.sidebar.addTab({
    id: 'lwm2m-devices',
    label: 'LwM2M',
    name: t('title'),
    iconClass: 'fa fa-microchip',
    content: root,
    enableOnEdit: true,
    onchange: loadServers
  });
  RED.events.on('deploy', function () { setTimeout(loadServers, 500); });
  // Leaving the tab (or the page) tells the runtime to stop recording for this editor.
  setInterval(function () {
    if (!state.server || root.is(':visible') || !watchTimer) return;
    clearTimeout(watchTimer);
    watchTimer = undefined;
    watch();
  }, 5000);
})();
