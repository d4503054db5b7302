#!/bin/busybox sh
# /init of the Linux install CD (tests/slow/meson.build, linux-install-cd):
# Debian's own drivers find the CD and both disks, and the tests' verify boot
# sector and payload go from the CD onto each disk, as the kit installer
# (tests/guest-kit/guests/installer.c) writes them. Every line for the test
# starts "VESSEL-INSTALL: "; the machine powers off at the end either way.
bb=/bin/busybox

say() { echo "VESSEL-INSTALL: $*"; }
fail() {
    say "FAIL $*"
    $bb sync
    $bb poweroff -f
}

$bb mkdir -p /proc /sys /dev /cdrom
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
# The kernel creates the block nodes itself; there is no udev here.
$bb mount -t devtmpfs devtmpfs /dev || fail "no devtmpfs"
say "reached init after $($bb cut -d' ' -f1 /proc/uptime) s"

# Dependencies first (make-initramfs.py ordered them). The crypto modules
# come before crc-t10dif and crc64-rocksoft, which look their algorithms up
# by name and would otherwise need modprobe to load them.
for m in $($bb cat /etc/vessel-modules); do
    $bb insmod /lib/modules/$m.ko || fail "insmod $m"
done
say "drivers loaded: $($bb tr '\n' ' ' < /etc/vessel-modules)"

# Probing is asynchronous (libata scans its ports, virtio-pci binds later):
# wait for each node, bounded, one second at a time.
wait_dev() {
    i=0
    while [ ! -b "$1" ]; do
        i=$((i + 1))
        [ $i -le 120 ] || fail "$1 did not appear (/proc/partitions: $($bb cat /proc/partitions | $bb tr '\n' ' '))"
        $bb sleep 1
    done
}

# ata_piix: the IDE primary master is the first SCSI disk, the secondary
# master the first CD (sr_mod); virtio_blk: the first virtio disk.
wait_dev /dev/sr0
$bb mount -t iso9660 -o ro /dev/sr0 /cdrom || fail "mount /dev/sr0"
cd=/cdrom
for f in VERIFY.BIN PAYLOAD.BIN VPATCH.BIN; do
    [ -f $cd/$f ] || fail "no $f on the CD ($($bb ls $cd | $bb tr '\n' ' '))"
done
size=$($bb stat -c %s $cd/PAYLOAD.BIN)
n=$(( (size + 511) / 512 ))
say "CD mounted: payload $size bytes, $n sectors"

for dev in /dev/sda /dev/vda; do
    wait_dev $dev
    # Sector 0: the verify boot sector with the payload's checksum and
    # length patched in at 0x1B4 (436) as the host computed them
    # (install-media.py); sectors 1..n: the payload.
    $bb dd if=$cd/VERIFY.BIN of=$dev bs=512 count=1 2>/dev/null || fail "write $dev sector 0"
    $bb dd if=$cd/VPATCH.BIN of=$dev bs=1 seek=436 conv=notrunc 2>/dev/null \
        || fail "patch $dev"
    $bb dd if=$cd/PAYLOAD.BIN of=$dev bs=512 seek=1 conv=notrunc 2>/dev/null \
        || fail "write $dev payload"
    $bb sync
    # Read back through the kernel's view of the device, not its cache.
    echo 3 > /proc/sys/vm/drop_caches
    $bb dd if=$dev bs=512 skip=1 count=$n 2>/dev/null | $bb head -c $size \
        | $bb cmp -s - $cd/PAYLOAD.BIN \
        || fail "$dev reads back differently"
    say "wrote $dev ($((n + 1)) sectors)"
done

$bb umount /cdrom
$bb sync
say "done"
$bb poweroff -f
