/* Machine definitions as libvirt domain XML (see vessel-definition.h). */
#include "app/vessel-definition.h"

#include <glib/gi18n.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_QUARK (vessel-definition-error-quark, vessel_definition_error)

void
vessel_export_clear (VesselExport *e)
{
  g_clear_pointer (&e->address, g_free);
  g_clear_pointer (&e->password, g_free);
  e->enabled = FALSE;
  e->port = 0;
}

/* libvirt-gconfig has no getters for some attributes (a graphics element's
 * listen address and password, memory units): read them from the object's
 * own XML. */
static xmlDoc *
object_parse (GVirConfigObject *obj)
{
  g_autofree char *xml = gvir_config_object_to_xml (obj);
  if (!xml)
    return NULL;
  return xmlReadMemory (xml, (int) strlen (xml), NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOBLANKS);
}

static char *
object_root_attr (GVirConfigObject *obj, const char *attr)
{
  xmlDoc *doc = object_parse (obj);
  if (!doc)
    return NULL;
  xmlChar *v = xmlGetProp (xmlDocGetRootElement (doc), (const xmlChar *) attr);
  char *out = v ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  xmlFreeDoc (doc);
  return out;
}

static xmlNode *
child_element (xmlNode *parent, const char *name)
{
  for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && !strcmp ((const char *) n->name, name))
      return n;
  return NULL;
}

/* An attribute of a child element (<disk><target bus=...>). */
static char *
object_child_attr (GVirConfigObject *obj, const char *child, const char *attr)
{
  xmlDoc *doc = object_parse (obj);
  if (!doc)
    return NULL;
  xmlNode *n = child_element (xmlDocGetRootElement (doc), child);
  xmlChar *v = n ? xmlGetProp (n, (const xmlChar *) attr) : NULL;
  char *out = v ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  xmlFreeDoc (doc);
  return out;
}

char *
vessel_definition_make_name (const char *title)
{
  GString *s = g_string_new (NULL);
  for (const char *p = title ? title : ""; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (c < 0x80 && (g_ascii_isalnum ((char) c) || c == '-' || c == '_'
                       || c == '.'))
        g_string_append_c (s, (char) g_ascii_tolower ((char) c));
      else if (s->len && s->str[s->len - 1] != '-')
        g_string_append_c (s, '-');
    }
  while (s->len && s->str[s->len - 1] == '-')
    g_string_truncate (s, s->len - 1);
  /* libvirt refuses names starting with a dot (hidden files). */
  while (s->len && s->str[0] == '.')
    g_string_erase (s, 0, 1);
  if (!s->len)
    g_string_assign (s, "machine");
  return g_string_free (s, FALSE);
}

static GVirConfigDomainDevice *
device_from_xml (GType type, const char *xml)
{
  g_autoptr (GError) error = NULL;
  /* The root element's name is the device's kind: <disk>, <serial>... */
  const char *start = strchr (xml, '<') + 1;
  g_autofree char *root = g_strndup (start, strcspn (start, " />"));
  GVirConfigObject *o = gvir_config_object_new_from_xml (type, root, NULL,
                                                         xml, &error);
  g_assert_no_error (error); /* our own XML */
  return GVIR_CONFIG_DOMAIN_DEVICE (o);
}

static GVirConfigDomainDevice *
cdrom_device_new (const char *iso)
{
  g_autofree char *xml = NULL;
  if (iso)
    xml = g_markup_printf_escaped (
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
        "<source file='%s'/><target dev='hdc' bus='ide'/><readonly/></disk>",
        iso);
  else
    xml = g_strdup ("<disk type='file' device='cdrom'>"
                    "<driver name='qemu' type='raw'/>"
                    "<target dev='hdc' bus='ide'/><readonly/></disk>");
  return device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_DISK, xml);
}

GVirConfigDomain *
vessel_definition_new (const char *name, const char *title,
                       guint64 memory_bytes, guint cpus)
{
  GVirConfigDomain *d = gvir_config_domain_new ();
  gvir_config_domain_set_virt_type (d, GVIR_CONFIG_DOMAIN_VIRT_KVM);
  gvir_config_domain_set_name (d, name);
  if (title && *title)
    gvir_config_domain_set_title (d, title);
  g_autofree char *uuid = g_uuid_string_random ();
  gvir_config_domain_set_uuid (d, uuid);
  vessel_definition_set_memory (d, memory_bytes);
  vessel_definition_set_cpus (d, cpus);

  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_os_new ();
  gvir_config_domain_os_set_os_type (os, GVIR_CONFIG_DOMAIN_OS_TYPE_HVM);
  gvir_config_domain_os_set_arch (os, "x86_64");
  gvir_config_domain_os_set_machine (os, "pc");
  gvir_config_domain_set_os (d, os);
  vessel_definition_set_boot_cdrom_first (d, TRUE);
  const char *features[] = { "acpi", "apic", NULL };
  gvir_config_domain_set_features (d, (GStrv) features);

  GVirConfigDomainDevice *devs[] = {
    cdrom_device_new (NULL),
    device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_SERIAL,
                     "<serial type='pty'><target port='0'/></serial>"),
    device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_CONSOLE,
                     "<console type='pty'><target type='serial' port='0'/>"
                     "</console>"),
    device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_INPUT,
                     "<input type='tablet' bus='virtio'/>"),
    device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_VIDEO,
                     "<video><model type='vga' vram='16384' heads='1'/>"
                     "</video>"),
  };
  for (size_t i = 0; i < G_N_ELEMENTS (devs); i++)
    {
      gvir_config_domain_add_device (d, devs[i]);
      g_object_unref (devs[i]);
    }
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *created = g_date_time_format_iso8601 (now);
  vessel_definition_set_meta (d, "created", created);
  return d;
}

const char *
vessel_definition_get_title (GVirConfigDomain *domain)
{
  const char *t = gvir_config_domain_get_title (domain);
  return t && *t ? t : gvir_config_domain_get_name (domain);
}

/* libvirt-gconfig converts <memory unit=...> to KiB. */
guint64
vessel_definition_get_memory (GVirConfigDomain *domain)
{
  guint64 kib = gvir_config_domain_get_memory (domain);
  return kib > G_MAXUINT64 / 1024 ? G_MAXUINT64 : kib * 1024;
}

void
vessel_definition_set_memory (GVirConfigDomain *domain, guint64 bytes)
{
  /* Without a unit attribute libvirt reads KiB; set_memory writes none. */
  gvir_config_domain_set_memory (domain, bytes / 1024);
  gvir_config_domain_set_current_memory (domain, bytes / 1024);
}

guint
vessel_definition_get_cpus (GVirConfigDomain *domain)
{
  guint64 n = gvir_config_domain_get_vcpus (domain);
  return n > G_MAXUINT ? G_MAXUINT : (guint) n;
}

void
vessel_definition_set_cpus (GVirConfigDomain *domain, guint cpus)
{
  gvir_config_domain_set_vcpus (domain, cpus);
}

/* <disk device=...>: "disk" when absent, as libvirt reads it. */
static gboolean
disk_device_is (GVirConfigDomainDevice *dev, const char *kind)
{
  if (!GVIR_CONFIG_IS_DOMAIN_DISK (dev))
    return FALSE;
  g_autofree char *d = object_root_attr (GVIR_CONFIG_OBJECT (dev), "device");
  return !strcmp (d ? d : "disk", kind);
}

static gboolean
disk_is_cdrom (GVirConfigDomainDevice *dev)
{
  return disk_device_is (dev, "cdrom");
}

static gboolean
disk_is_hard_disk (GVirConfigDomainDevice *dev)
{
  return disk_device_is (dev, "disk");
}

/* The image file of a file-backed disk, or NULL. */
static char *
disk_source (GVirConfigDomainDevice *dev)
{
  char *src = object_child_attr (GVIR_CONFIG_OBJECT (dev), "source", "file");
  if (src && !*src)
    g_clear_pointer (&src, g_free);
  return src;
}

char *
vessel_definition_get_cdrom (GVirConfigDomain *domain)
{
  GList *devs = gvir_config_domain_get_devices (domain);
  char *out = NULL;
  for (GList *l = devs; l; l = l->next)
    if (disk_is_cdrom (l->data))
      {
        out = disk_source (l->data);
        break;
      }
  g_list_free_full (devs, g_object_unref);
  return out;
}

void
vessel_definition_set_cdrom (GVirConfigDomain *domain, const char *iso)
{
  GList *devs = gvir_config_domain_get_devices (domain);
  /* libvirt takes absolute paths only. */
  g_autofree char *abs = iso && *iso ? g_canonicalize_filename (iso, NULL)
                                     : NULL;
  GVirConfigDomainDevice *cd = cdrom_device_new (abs);
  gboolean replaced = FALSE;
  for (GList *l = devs; l; l = l->next)
    if (!replaced && disk_is_cdrom (l->data))
      {
        g_object_unref (l->data);
        l->data = g_object_ref (cd);
        replaced = TRUE;
      }
  if (!replaced)
    devs = g_list_append (devs, g_object_ref (cd));
  gvir_config_domain_set_devices (domain, devs);
  g_list_free_full (devs, g_object_unref);
  g_object_unref (cd);
}

static const char *
disk_target_prefix (gboolean virtio)
{
  return virtio ? "vd" : "hd";
}

void
vessel_definition_add_disk (GVirConfigDomain *domain, const char *path,
                            const char *format, gboolean virtio)
{
  /* The next free target name: vda, vdb... or hda, hdb, hdd (hdc is the
   * CD-ROM drive). */
  GList *devs = gvir_config_domain_get_devices (domain);
  g_autofree char *target = NULL;
  for (char c = 'a'; c <= 'z' && !target; c++)
    {
      if (!virtio && c == 'c')
        continue;
      g_autofree char *name
          = g_strdup_printf ("%s%c", disk_target_prefix (virtio), c);
      gboolean used = FALSE;
      for (GList *l = devs; l && !used; l = l->next)
        if (GVIR_CONFIG_IS_DOMAIN_DISK (l->data))
          {
            const char *t = gvir_config_domain_disk_get_target_dev (l->data);
            used = t && !strcmp (t, name);
          }
      if (!used)
        target = g_steal_pointer (&name);
    }
  g_list_free_full (devs, g_object_unref);
  g_autofree char *abs = g_canonicalize_filename (path, NULL);
  g_autofree char *xml = g_markup_printf_escaped (
      "<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
      "<source file='%s'/><target dev='%s' bus='%s'/></disk>",
      format, abs, target ? target : "vdz", virtio ? "virtio" : "ide");
  GVirConfigDomainDevice *disk = device_from_xml (GVIR_CONFIG_TYPE_DOMAIN_DISK,
                                                  xml);
  gvir_config_domain_add_device (domain, disk);
  g_object_unref (disk);
}

GStrv
vessel_definition_get_disks (GVirConfigDomain *domain)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  GList *devs = gvir_config_domain_get_devices (domain);
  for (GList *l = devs; l; l = l->next)
    if (disk_is_hard_disk (l->data))
      {
        g_autofree char *src = disk_source (l->data);
        if (src)
          g_strv_builder_add (b, src);
      }
  g_list_free_full (devs, g_object_unref);
  return g_strv_builder_end (b);
}

gboolean
vessel_definition_get_boot_cdrom_first (GVirConfigDomain *domain)
{
  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_get_os (domain);
  if (!os)
    return FALSE;
  GList *boot = gvir_config_domain_os_get_boot_devices (os);
  gboolean cd = FALSE;
  for (GList *l = boot; l; l = l->next)
    {
      int dev = GPOINTER_TO_INT (l->data);
      if (dev == GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_CDROM
          || dev == GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_HD)
        {
          cd = dev == GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_CDROM;
          break;
        }
    }
  g_list_free (boot);
  return cd;
}

void
vessel_definition_set_boot_cdrom_first (GVirConfigDomain *domain,
                                        gboolean cdrom_first)
{
  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_get_os (domain);
  if (!os)
    return;
  GList *boot = NULL;
  boot = g_list_append (boot, GINT_TO_POINTER (
      cdrom_first ? GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_CDROM
                  : GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_HD));
  boot = g_list_append (boot, GINT_TO_POINTER (
      cdrom_first ? GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_HD
                  : GVIR_CONFIG_DOMAIN_OS_BOOT_DEVICE_CDROM));
  gvir_config_domain_os_set_boot_devices (os, boot);
  g_list_free (boot);
  /* get_os hands out a copy's wrapper over the same node: nothing else to
   * write back. */
}

/* The text of a child element (<os><nvram>…</nvram>), or NULL. */
static char *
object_child_text (GVirConfigObject *obj, const char *child)
{
  xmlDoc *doc = object_parse (obj);
  if (!doc)
    return NULL;
  xmlNode *n = child_element (xmlDocGetRootElement (doc), child);
  xmlChar *v = n ? xmlNodeGetContent (n) : NULL;
  char *out = v && *v ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  xmlFreeDoc (doc);
  return out;
}

static void
remove_child_elements (xmlNode *parent, const char *name)
{
  xmlNode *n;
  while ((n = child_element (parent, name)))
    {
      xmlUnlinkNode (n);
      xmlFreeNode (n);
    }
}

/* libvirt-gconfig writes <loader> without attributes and has no <nvram>:
 * the <os> element is rewritten through libxml and put back whole. */
void
vessel_definition_set_uefi (GVirConfigDomain *domain, const char *code,
                            const char *vars)
{
  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_get_os (domain);
  if (!os)
    return;
  xmlDoc *doc = object_parse (GVIR_CONFIG_OBJECT (os));
  if (!doc)
    return;
  xmlNode *root = xmlDocGetRootElement (doc);
  remove_child_elements (root, "loader");
  remove_child_elements (root, "nvram");
  if (code)
    {
      xmlSetProp (root, (const xmlChar *) "firmware",
                  (const xmlChar *) "efi");
      /* Where libvirt's schema puts them: after <type>, before <boot>. */
      xmlNode *type = child_element (root, "type");
      xmlNode *loader = xmlNewNode (NULL, (const xmlChar *) "loader");
      xmlSetProp (loader, (const xmlChar *) "readonly",
                  (const xmlChar *) "yes");
      xmlSetProp (loader, (const xmlChar *) "type",
                  (const xmlChar *) "pflash");
      xmlNodeAddContent (loader, (const xmlChar *) code);
      if (type)
        xmlAddNextSibling (type, loader);
      else
        xmlAddChild (root, loader);
      if (vars)
        {
          xmlNode *nvram = xmlNewNode (NULL, (const xmlChar *) "nvram");
          xmlNodeAddContent (nvram, (const xmlChar *) vars);
          xmlAddNextSibling (loader, nvram);
        }
    }
  else
    xmlUnsetProp (root, (const xmlChar *) "firmware");
  xmlChar *xml = NULL;
  int len = 0;
  xmlDocDumpMemory (doc, &xml, &len);
  xmlFreeDoc (doc);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomainOs) updated
      = gvir_config_domain_os_new_from_xml ((const char *) xml, &error);
  xmlFree (xml);
  g_assert_no_error (error); /* our own XML */
  gvir_config_domain_set_os (domain, updated);
}

gboolean
vessel_definition_get_uefi (GVirConfigDomain *domain, char **code,
                            char **vars)
{
  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_get_os (domain);
  GVirConfigObject *o = os ? GVIR_CONFIG_OBJECT (os) : NULL;
  g_autofree char *firmware = o ? object_root_attr (o, "firmware") : NULL;
  g_autofree char *type = o ? object_child_attr (o, "loader", "type") : NULL;
  if (code)
    *code = o ? object_child_text (o, "loader") : NULL;
  if (vars)
    *vars = o ? object_child_text (o, "nvram") : NULL;
  return !g_strcmp0 (firmware, "efi") || !g_strcmp0 (type, "pflash");
}

static gboolean
device_is_export (GVirConfigDomainDevice *dev, VesselExportKind kind)
{
  return kind == VESSEL_EXPORT_VNC ? GVIR_CONFIG_IS_DOMAIN_GRAPHICS_VNC (dev)
                                   : GVIR_CONFIG_IS_DOMAIN_GRAPHICS_SPICE (dev);
}

static void
export_from_device (GVirConfigDomainDevice *dev, VesselExport *out)
{
  g_autofree char *port = object_root_attr (GVIR_CONFIG_OBJECT (dev), "port");
  out->enabled = TRUE;
  out->port = port ? atoi (port) : 0;
  if (out->port < 0)
    out->port = 0;
  out->address = object_root_attr (GVIR_CONFIG_OBJECT (dev), "listen");
  out->password = object_root_attr (GVIR_CONFIG_OBJECT (dev), "passwd");
  if (out->password && !*out->password)
    g_clear_pointer (&out->password, g_free);
}

void
vessel_definition_get_export (GVirConfigDomain *domain, VesselExportKind kind,
                              VesselExport *out)
{
  memset (out, 0, sizeof *out);
  GList *devs = gvir_config_domain_get_devices (domain);
  for (GList *l = devs; l; l = l->next)
    if (device_is_export (l->data, kind))
      {
        export_from_device (l->data, out);
        break;
      }
  g_list_free_full (devs, g_object_unref);
}

void
vessel_definition_set_export (GVirConfigDomain *domain, VesselExportKind kind,
                              const VesselExport *e)
{
  GList *devs = gvir_config_domain_get_devices (domain);
  GList *keep = NULL;
  for (GList *l = devs; l; l = l->next)
    if (device_is_export (l->data, kind))
      g_object_unref (l->data);
    else
      keep = g_list_append (keep, l->data);
  g_list_free (devs);
  if (e && e->enabled)
    {
      const char *type = kind == VESSEL_EXPORT_VNC ? "vnc" : "spice";
      GString *xml = g_string_new (NULL);
      g_autofree char *head = g_markup_printf_escaped (
          "<graphics type='%s' listen='%s'", type,
          e->address && *e->address ? e->address : "127.0.0.1");
      g_string_append (xml, head);
      if (e->port > 0)
        g_string_append_printf (xml, " port='%d' autoport='no'", e->port);
      else
        g_string_append (xml, " autoport='yes'");
      if (e->password && *e->password)
        {
          g_autofree char *pw
              = g_markup_printf_escaped (" passwd='%s'", e->password);
          g_string_append (xml, pw);
        }
      g_string_append (xml, "/>");
      GType t = kind == VESSEL_EXPORT_VNC
                    ? GVIR_CONFIG_TYPE_DOMAIN_GRAPHICS_VNC
                    : GVIR_CONFIG_TYPE_DOMAIN_GRAPHICS_SPICE;
      keep = g_list_append (keep, device_from_xml (t, xml->str));
      g_string_free (xml, TRUE);
    }
  gvir_config_domain_set_devices (domain, keep);
  g_list_free_full (keep, g_object_unref);
}

char *
vessel_export_uri (VesselExportKind kind, const VesselExport *e)
{
  if (!e->enabled || e->port <= 0)
    return NULL;
  const char *host = e->address && *e->address ? e->address : "127.0.0.1";
  if (!strcmp (host, "0.0.0.0") || !strcmp (host, "::"))
    host = g_get_host_name ();
  gboolean v6 = strchr (host, ':') != NULL;
  return g_strdup_printf ("%s://%s%s%s:%d",
                          kind == VESSEL_EXPORT_VNC ? "vnc" : "spice",
                          v6 ? "[" : "", host, v6 ? "]" : "", e->port);
}

/* <metadata><vessel:machine><vessel:KEY>VALUE</vessel:KEY>... */
static GHashTable *
meta_read (GVirConfigDomain *domain)
{
  GHashTable *t = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         g_free);
  g_autofree char *xml = gvir_config_domain_get_custom_xml (domain,
                                                            VESSEL_XMLNS_URI);
  if (!xml)
    return t;
  xmlDoc *doc = xmlReadMemory (xml, (int) strlen (xml), NULL, NULL,
                               XML_PARSE_NONET | XML_PARSE_NOBLANKS);
  xmlNode *root = doc ? xmlDocGetRootElement (doc) : NULL;
  for (xmlNode *n = root ? root->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE)
      {
        xmlChar *v = xmlNodeGetContent (n);
        g_hash_table_insert (t, g_strdup ((const char *) n->name),
                             g_strdup (v ? (const char *) v : ""));
        xmlFree (v);
      }
  if (doc)
    xmlFreeDoc (doc);
  return t;
}

char *
vessel_definition_get_meta (GVirConfigDomain *domain, const char *key)
{
  g_autoptr (GHashTable) t = meta_read (domain);
  return g_strdup (g_hash_table_lookup (t, key));
}

void
vessel_definition_set_meta (GVirConfigDomain *domain, const char *key,
                            const char *value)
{
  g_autoptr (GHashTable) t = meta_read (domain);
  if (value)
    g_hash_table_insert (t, g_strdup (key), g_strdup (value));
  else
    g_hash_table_remove (t, key);
  /* Sorted keys: the file does not churn when nothing changed. */
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (t, NULL);
  guint n = g_hash_table_size (t);
  qsort (keys, n, sizeof *keys, (GCompareFunc) (void (*) (void)) g_strcmp0);
  GString *xml = g_string_new ("<machine>");
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *el = g_markup_printf_escaped (
          "<%s>%s</%s>", (const char *) keys[i],
          (const char *) g_hash_table_lookup (t, keys[i]),
          (const char *) keys[i]);
      g_string_append (xml, el);
    }
  g_string_append (xml, "</machine>");
  g_autoptr (GError) error = NULL;
  gvir_config_domain_set_custom_xml_ns_children (
      domain, xml->str, VESSEL_XMLNS_PREFIX, VESSEL_XMLNS_URI, &error);
  if (error)
    g_warning ("vessel metadata: %s", error->message);
  g_string_free (xml, TRUE);
}

GVirConfigDomain *
vessel_definition_load (const char *path, GError **error)
{
  g_autofree char *xml = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &xml, &len, error))
    return NULL;
  /* libvirt-gconfig crashes on some documents it cannot parse (an empty
   * file): parse first, and refuse anything but a <domain>. */
  xmlDoc *doc = len < G_MAXINT
                    ? xmlReadMemory (xml, (int) len, NULL, NULL,
                                     XML_PARSE_NONET | XML_PARSE_NOERROR
                                         | XML_PARSE_NOWARNING)
                    : NULL;
  xmlNode *root = doc ? xmlDocGetRootElement (doc) : NULL;
  gboolean is_domain = root && !strcmp ((const char *) root->name, "domain");
  if (doc)
    xmlFreeDoc (doc);
  if (!is_domain)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   root ? _("%s is not a machine definition: it is XML but "
                            "not a libvirt <domain>")
                        : _("%s is not a machine definition: it is not "
                            "well-formed XML"),
                   path);
      return NULL;
    }
  GError *local = NULL;
  GVirConfigDomain *d = gvir_config_domain_new_from_xml (xml, &local);
  if (!d)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   _("%s is not a machine definition: %s"), path,
                   local ? local->message : _("not a libvirt domain"));
      g_clear_error (&local);
      return NULL;
    }
  if (!gvir_config_domain_get_name (d) || !gvir_config_domain_get_uuid (d))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   _("%s is not a machine definition: it has no name or "
                     "UUID"),
                   path);
      g_object_unref (d);
      return NULL;
    }
  return d;
}

gboolean
vessel_definition_save (GVirConfigDomain *domain, const char *path,
                        GError **error)
{
  g_autofree char *xml = gvir_config_object_to_xml (GVIR_CONFIG_OBJECT (domain));
  g_autofree char *text = g_strconcat (xml, "\n", NULL);
  return g_file_set_contents_full (path, text, -1,
                                   G_FILE_SET_CONTENTS_CONSISTENT
                                       | G_FILE_SET_CONTENTS_DURABLE,
                                   0644, error);
}

static const char *
keep (VesselEngineConfig *cfg, const char *s)
{
  if (!s)
    return NULL;
  char *copy = g_strdup (s);
  g_ptr_array_add (cfg->strings, copy);
  return copy;
}

static gboolean
engine_add_disk (VesselEngineConfig *out, GVirConfigDomainDisk *disk,
                 const char *name, GError **error)
{
  GVirConfigDomainDevice *dev = GVIR_CONFIG_DOMAIN_DEVICE (disk);
  g_autofree char *src = disk_source (dev);
  g_autofree char *target = object_child_attr (GVIR_CONFIG_OBJECT (disk),
                                               "target", "dev");
  if (disk_is_cdrom (dev))
    {
      if (out->n_cdroms++)
        {
          g_set_error (error, VESSEL_DEFINITION_ERROR,
                       VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                       _("Machine “%s” has more than one CD-ROM drive; "
                         "Vessel machines have one"),
                       name);
          return FALSE;
        }
      out->machine.cdrom = keep (out, src);
      return TRUE;
    }
  if (!disk_is_hard_disk (dev))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s”: disk %s is a floppy or LUN, which Vessel "
                     "does not have"),
                   name, target ? target : "?");
      return FALSE;
    }
  if (!src)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   _("Machine “%s”: disk %s has no image file"), name,
                   target ? target : "?");
      return FALSE;
    }
  if (out->machine.n_disks == VMM_MACHINE_MAX_DISKS)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” has more than %d disks"), name,
                   VMM_MACHINE_MAX_DISKS);
      return FALSE;
    }
  vmm_disk_config *dc = &out->disks[out->machine.n_disks++];
  dc->path = keep (out, src);
  /* Read the attribute itself: libvirt-gconfig 4.0's target-bus getter
   * answers "ide" for every bus. */
  g_autofree char *bus = object_child_attr (GVIR_CONFIG_OBJECT (disk),
                                            "target", "bus");
  if (!g_strcmp0 (bus, "virtio"))
    dc->interface = VMM_DISK_VIRTIO;
  else if (!bus || !strcmp (bus, "ide"))
    dc->interface = VMM_DISK_IDE;
  else
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s”: disk %s is on a bus Vessel does not have; "
                     "use virtio or ide"),
                   name, target ? target : src);
      return FALSE;
    }
  g_autoptr (GVirConfigDomainDiskDriver) drv
      = gvir_config_domain_disk_get_driver (disk);
  g_autofree char *fmt
      = object_child_attr (GVIR_CONFIG_OBJECT (disk), "driver", "type");
  if (fmt && strcmp (fmt, "raw") && strcmp (fmt, "qcow2"))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s”: disk %s is in %s format; Vessel reads "
                     "raw and qcow2"),
                   name, src, fmt);
      return FALSE;
    }
  dc->format = keep (out, fmt);
  dc->direct = drv && gvir_config_domain_disk_driver_get_cache (drv)
                          == GVIR_CONFIG_DOMAIN_DISK_CACHE_NONE;
  g_autofree char *xml = gvir_config_object_to_xml (GVIR_CONFIG_OBJECT (disk));
  dc->readonly = xml && strstr (xml, "<readonly/>") != NULL;
  return TRUE;
}

/* <interface type='user'> with <model type='virtio|e1000'/>, <mac
 * address='…'/> and <rom file='…'/> or <rom enabled='no'/>: a NIC on a
 * user-mode network (libslirp). */
static gboolean
engine_add_interface (VesselEngineConfig *out, GVirConfigDomainDevice *dev,
                      const char *name, GError **error)
{
  GVirConfigObject *o = GVIR_CONFIG_OBJECT (dev);
  g_autofree char *type = object_root_attr (o, "type");
  if (g_strcmp0 (type, "user"))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” has a network interface of type %s; "
                     "Vessel has user-mode networking (type='user')"),
                   name, type ? type : "?");
      return FALSE;
    }
  if (out->machine.n_nics == VMM_MACHINE_MAX_NICS)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” has more than %d network interfaces"),
                   name, VMM_MACHINE_MAX_NICS);
      return FALSE;
    }
  g_autofree char *model = object_child_attr (o, "model", "type");
  g_autofree char *mac = object_child_attr (o, "mac", "address");
  g_autofree char *rom = object_child_attr (o, "rom", "file");
  g_autofree char *rom_on = object_child_attr (o, "rom", "enabled");
  g_autofree char *spec = g_strdup_printf ("user,model=%s%s%s",
                                           model ? model : "virtio",
                                           mac ? ",mac=" : "",
                                           mac ? mac : "");
  vmm_nic_config *nc = &out->nics[out->machine.n_nics];
  g_autoptr (GError) local = NULL;
  if (!vmm_nic_config_parse (spec, nc, &local))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s”: network interface %s%s: Vessel has "
                     "virtio and e1000 NICs with unicast MAC addresses"),
                   name, model ? model : "virtio", mac ? mac : "");
      return FALSE;
    }
  out->machine.n_nics++;
  if (!g_strcmp0 (rom_on, "no"))
    nc->romfile = g_strdup ("");
  else if (rom)
    nc->romfile = g_strdup (rom);
  return TRUE;
}

/* <os firmware='efi'> or <loader type='pflash'>: OVMF's code read-only and
 * the machine's variable store (<nvram>) as a flash; a plain <loader> is a
 * BIOS image of the user's own; nothing: the installed SeaBIOS. */
static gboolean
engine_set_firmware (VesselEngineConfig *out, GVirConfigDomain *domain,
                     const char *name, GError **error)
{
  g_autofree char *code = NULL, *vars = NULL;
  gboolean uefi = vessel_definition_get_uefi (domain, &code, &vars);
  if (uefi && (!code || !vars))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” boots UEFI but names no %s: Vessel needs "
                     "<loader type='pflash'> and <nvram> files"),
                   name, code ? "<nvram>" : "<loader>");
      return FALSE;
    }
  if (!uefi && vars)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   _("Machine “%s” has an <nvram> variable store but no UEFI "
                     "firmware"),
                   name);
      return FALSE;
    }
  out->machine.firmware = keep (out, code);
  out->machine.firmware_vars = keep (out, vars);
  return TRUE;
}

gboolean
vessel_definition_to_engine (GVirConfigDomain *domain,
                             VesselEngineConfig *out, GError **error)
{
  memset (out, 0, sizeof *out);
  out->strings = g_ptr_array_new_with_free_func (g_free);
  const char *name = vessel_definition_get_title (domain);
  g_autofree char *vt = object_root_attr (GVIR_CONFIG_OBJECT (domain), "type");
  if (g_strcmp0 (vt, "kvm"))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” is not a KVM domain; Vessel runs only "
                     "type='kvm'"),
                   name);
      return FALSE;
    }
  g_autoptr (GVirConfigDomainOs) os = gvir_config_domain_get_os (domain);
  const char *arch = os ? gvir_config_domain_os_get_arch (os) : NULL;
  if (!os || gvir_config_domain_os_get_os_type (os)
                 != GVIR_CONFIG_DOMAIN_OS_TYPE_HVM
      || (arch && strcmp (arch, "x86_64")))
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_UNSUPPORTED,
                   _("Machine “%s” is not an x86_64 HVM guest"), name);
      return FALSE;
    }
  out->machine.memory = vessel_definition_get_memory (domain);
  if (out->machine.memory < VMM_MACHINE_MIN_MEMORY)
    {
      g_set_error (error, VESSEL_DEFINITION_ERROR,
                   VESSEL_DEFINITION_ERROR_INVALID,
                   _("Machine “%s” has too little memory (at least 16 MiB)"),
                   name);
      return FALSE;
    }
  out->machine.cpus = vessel_definition_get_cpus (domain);
  if (out->machine.cpus == 0)
    out->machine.cpus = 1;
  out->machine.boot = vessel_definition_get_boot_cdrom_first (domain)
                          ? VMM_BOOT_CDROM
                          : VMM_BOOT_DISK;
  out->machine.display = VMM_DISPLAY_NONE;
  out->machine.disks = out->disks;
  out->machine.nics = out->nics;
  /* <os><bootmenu enable='yes' timeout='MS'/><bios useserial='yes'/>. */
  g_autofree char *menu = object_child_attr (GVIR_CONFIG_OBJECT (os),
                                             "bootmenu", "enable");
  g_autofree char *menu_ms = object_child_attr (GVIR_CONFIG_OBJECT (os),
                                                "bootmenu", "timeout");
  g_autofree char *useserial = object_child_attr (GVIR_CONFIG_OBJECT (os),
                                                  "bios", "useserial");
  out->machine.boot_menu = !g_strcmp0 (menu, "yes");
  if (menu_ms)
    out->machine.boot_menu_wait_ms
        = (unsigned) MIN (g_ascii_strtoull (menu_ms, NULL, 10), 65535);
  out->machine.firmware_serial_console = !g_strcmp0 (useserial, "yes");
  if (!engine_set_firmware (out, domain, name, error))
    return FALSE;

  GList *devs = gvir_config_domain_get_devices (domain);
  gboolean ok = TRUE;
  for (GList *l = devs; l && ok; l = l->next)
    {
      GVirConfigDomainDevice *dev = l->data;
      if (GVIR_CONFIG_IS_DOMAIN_DISK (dev))
        ok = engine_add_disk (out, GVIR_CONFIG_DOMAIN_DISK (dev), name, error);
      else if (GVIR_CONFIG_IS_DOMAIN_INTERFACE (dev))
        ok = engine_add_interface (out, dev, name, error);
      else if (GVIR_CONFIG_IS_DOMAIN_VIDEO (dev))
        out->machine.display = VMM_DISPLAY_STD;
      else if (GVIR_CONFIG_IS_DOMAIN_GRAPHICS_VNC (dev) && !out->vnc.enabled)
        export_from_device (dev, &out->vnc);
      else if (GVIR_CONFIG_IS_DOMAIN_GRAPHICS_SPICE (dev)
               && !out->spice.enabled)
        export_from_device (dev, &out->spice);
    }
  g_list_free_full (devs, g_object_unref);
  return ok;
}

void
vessel_engine_config_clear (VesselEngineConfig *cfg)
{
  g_clear_pointer (&cfg->strings, g_ptr_array_unref);
  for (size_t i = 0; i < cfg->machine.n_nics; i++)
    vmm_nic_config_clear (&cfg->nics[i]);
  vessel_export_clear (&cfg->vnc);
  vessel_export_clear (&cfg->spice);
  memset (&cfg->machine, 0, sizeof cfg->machine);
}
