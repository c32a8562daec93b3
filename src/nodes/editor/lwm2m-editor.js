// Shared by the editors of the LwM2M nodes. scripts/build.js puts this file into the HTML of
// each node set, with the runtime's defaults (src/nodes/node-defaults.ts) and the notification
// attributes it accepts, so editor, runtime and examples agree. The first copy that runs defines RED.lwm2m.
if (!RED.lwm2m) {
  RED.lwm2m = (function () {
    var DEFAULTS = '@defaults';
    var ATTRIBUTES = '@attributes';
    // The LwM2M version that defined each attribute newer than 1.0.
    var ATTRIBUTE_SINCE = '@attributeSince';
    var NS = '@lwm2m-red/node-red-lwm2m-server/lwm2m-server:lwm2m-server.editor.';
    function t(key, params) { return RED._(NS + key, params); }
    function clone(value) { return JSON.parse(JSON.stringify(value)); }
    function api(path) { return 'lwm2m-red/' + path; }

    /** A registerType defaults block: every property with the runtime's default, plus what the node adds (validate, type, required). */
    function defaults(type, fields) {
      var result = {};
      Object.keys(DEFAULTS[type]).forEach(function (key) {
        result[key] = $.extend({ value: clone(DEFAULTS[type][key]) }, (fields || {})[key]);
      });
      return result;
    }

    // A flow saved before a property existed leaves it out, and the runtime reads a missing
    // property as its default: nodes get that default when they come into the editor, so an
    // opened dialog shows (and saves) what the runtime does.
    RED.events.on('nodes:add', function (node) {
      var own = node && DEFAULTS[node.type];
      if (!own) return;
      Object.keys(own).forEach(function (key) {
        if (node[key] !== undefined) return;
        try { node[key] = clone(own[key]); } catch (e) { /* a locked flow keeps the node as it is */ }
      });
    });

    /** The value of a sibling field: from the open dialog, or from the node. */
    function field(node, name) {
      var input = $('#node-input-' + name + ', #node-config-input-' + name).first();
      if (input.length) return input.is(':checkbox') ? input.is(':checked') : input.val();
      return node[name];
    }
    function blank(value) { return value === undefined || value === null || String(value).trim() === ''; }

    /** "/3/0/1" style: up to four ids, object and instance ids up to 65534, resource ids up to 65535. */
    function validPath(text) {
      var trimmed = String(text).trim();
      if (trimmed === '/') return true;
      if (!/^\/?\d{1,5}(\/\d{1,5}){0,3}\/?$/.test(trimmed)) return false;
      return trimmed.replace(/^\/|\/$/g, '').split('/').every(function (id, level) { return Number(id) <= (level < 2 ? 65534 : 65535); });
    }
    function validEndpoint(text) {
      return String(text).length <= 255 && !/[\u0000-\u001f\u007f]/.test(String(text));
    }
    /** For a typed setting: a text is checked here, a msg/flow/global/env property by Node-RED's own rules. */
    function typed(typeName, checkText) {
      return function (value, options) {
        var type = field(this, typeName) || 'str';
        if (type !== 'str') return RED.validators.typedInput(typeName).call(this, value, options);
        return blank(value) || checkText.call(this, String(value).trim()) || false;
      };
    }
    // The same classes as write-attributes.ts: seconds, a count, a 0/1 flag; any other attribute is a number.
    var SECONDS_ATTRIBUTES = ['pmin', 'pmax', 'epmin', 'epmax'];
    var COUNT_ATTRIBUTES = ['hqmax'];
    var FLAG_ATTRIBUTES = ['edge', 'con'];
    // Every validator takes (value, options): Node-RED only shows the reason a validator returns when it declares both.
    var validators = {
      /** Empty (no listener) or a whole number 0..65535: 70000 is refused, not replaced. */
      port: function (value, options) {
        if (blank(value)) return true;
        var number = Number(value);
        return (Number.isInteger(number) && number >= 0 && number <= 65535) || t('invalid.port');
      },
      /** A positive number of seconds; empty allowed where the msg may give it. */
      seconds: function (optional) {
        return function (value, options) {
          if (blank(value)) return optional || t('invalid.seconds');
          var number = Number(value);
          return (isFinite(number) && number > 0) || t('invalid.seconds');
        };
      },
      endpoint: typed('endpointType', function (text) { return validEndpoint(text) || t('invalid.endpoint'); }),
      path: typed('pathType', function (text) {
        var composite = field(this, 'composite') === true;
        var paths = composite ? text.split(',') : [text];
        return paths.every(validPath) || t(composite ? 'invalid.paths' : 'invalid.path');
      }),
      /** A notification attribute: a number (whole seconds for pmin, pmax, epmin, epmax; a whole count for hqmax; 0 or 1 for edge, con), in order with its partner. */
      attribute: function (name) {
        return function (value, options) {
          if (blank(value)) return true;
          var number = Number(value);
          if (!isFinite(number)) return t('invalid.attribute', { name: name });
          if (SECONDS_ATTRIBUTES.indexOf(name) >= 0 && (!Number.isInteger(number) || number < 0)) return t('invalid.attributeSeconds', { name: name });
          if (COUNT_ATTRIBUTES.indexOf(name) >= 0 && (!Number.isInteger(number) || number < 0)) return t('invalid.attributeCount', { name: name });
          if (FLAG_ATTRIBUTES.indexOf(name) >= 0 && number !== 0 && number !== 1) return t('invalid.attributeFlag', { name: name });
          if (name === 'st' && number < 0) return t('invalid.attribute', { name: name });
          var below = { pmax: 'pmin', epmax: 'epmin', gt: 'lt' }[name];
          if (below && !blank(field(this, below)) && Number(field(this, below)) > number) return t('invalid.attributeOrder', { low: below, high: name });
          return true;
        };
      }
    };

    /** Completion of endpoint names from the running server (bounded answers, whatever the fleet). */
    function completeEndpoints(serverSelector) {
      return function (value, done) {
        var server = $(serverSelector).val();
        if (!server || server === '_ADD_') return done([]);
        $.getJSON(api('servers/' + encodeURIComponent(server) + '/complete/endpoints'), { q: value })
          .done(function (names) { done(names.map(function (name) { return { value: name, label: name }; })); })
          .fail(function () { done([]); });
      };
    }
    function completePaths(serverSelector, endpointSelector) {
      return function (value, done) {
        var server = $(serverSelector).val();
        if (!server || server === '_ADD_') return done([]);
        var typeField = $(endpointSelector + 'Type');
        var endpoint = typeField.length && typeField.val() !== 'str' ? '' : $(endpointSelector).val();
        $.getJSON(api('servers/' + encodeURIComponent(server) + '/complete/paths'), { endpoint: endpoint || '', q: value.split(',').pop().trim() })
          .done(function (paths) { done(paths); })
          .fail(function () { done([]); });
      };
    }

    /**
     * Endpoint and path as typed inputs (a text with completion, or a msg, flow, global or env
     * property), in the dialog of a node with #node-input-server.
     */
    function targetFields(options) {
      var opts = options || {};
      var text = function (complete) {
        return { value: 'str', label: RED._('common.type.string'), icon: 'red/images/typedInput/az.svg', autoComplete: complete };
      };
      var endpointTypes = [text(completeEndpoints('#node-input-server')), 'msg', 'flow', 'global', 'env'];
      if (opts.noMsgEndpoint) endpointTypes = endpointTypes.filter(function (type) { return type !== 'msg'; });
      $('#node-input-endpoint').typedInput({ types: endpointTypes, typeField: '#node-input-endpointType' });
      if ($('#node-input-path').length) {
        $('#node-input-path').typedInput({ types: [text(completePaths('#node-input-server', '#node-input-endpoint')), 'msg', 'flow', 'global', 'env'], typeField: '#node-input-pathType' });
      }
    }

    /** One field per notification attribute the runtime accepts, into a container of the dialog. */
    function attributeFields(node, container) {
      ATTRIBUTES.forEach(function (name) {
        var validate = validators.attribute(name);
        $('<input/>', { type: 'text', id: 'node-input-' + name, placeholder: name, title: t('attribute.' + name, { defaultValue: name }), style: 'width: 60px; margin: 0 4px 4px 0' })
          .val(node[name] === undefined ? '' : node[name])
          .appendTo(container)
          // Node-RED watches the fields of the dialog's template only, and these are made after it: they are checked as they are typed here.
          .on('change keyup paste', function () {
            $(this).toggleClass('input-error', validate.call(node, $(this).val(), {}) !== true);
          });
      });
    }

    /** Validation of every attribute field, for a defaults block. */
    function newer(a, b) {
      var x = String(a).split('.').map(Number);
      var y = String(b).split('.').map(Number);
      return x[0] !== y[0] ? x[0] > y[0] : (x[1] || 0) > (y[1] || 0);
    }
    /** Whether a device of this LwM2M version takes the attribute on a path: type null for an object or instance, else the resource's type. */
    function attributeApplies(name, version, type) {
      if (ATTRIBUTE_SINCE[name] && newer(ATTRIBUTE_SINCE[name], version)) return false;
      if (['gt', 'lt', 'st'].indexOf(name) >= 0) return type === 'integer' || type === 'unsigned' || type === 'float';
      if (name === 'edge') return type === 'boolean';
      return true;
    }

    function attributeDefaults() {
      var fields = {};
      ATTRIBUTES.forEach(function (name) { fields[name] = { validate: validators.attribute(name) }; });
      return fields;
    }

    return { defaults: defaults, validators: validators, targetFields: targetFields, attributeFields: attributeFields, attributeDefaults: attributeDefaults, attributeApplies: attributeApplies, attributes: ATTRIBUTES, api: api, t: t };
  })();
}
