/* vnc-passwd PASSWORD FILE: writes FILE in the vncpasswd format (the
 * password DES-encrypted with VNC's fixed key) that vncsnapshot -passwd
 * reads, through libvncserver's own function. */
#include <rfb/rfb.h>
#include <stdio.h>

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      fprintf (stderr, "usage: vnc-passwd PASSWORD FILE\n");
      return 2;
    }
  return rfbEncryptAndStorePasswd (argv[1], argv[2]) == 0 ? 0 : 1;
}
