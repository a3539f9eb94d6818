/* Makes broken dataset files for the bad-input tests:
 *   mkbad not-dlfs OUT.h5          an HDF5 file with no dlfs attributes
 *   mkbad bad-label FILE.h5 VALUE  overwrite /train/labels[345] in place
 *   mkbad set-attr FILE.h5 NAME V  overwrite the integer root attribute NAME */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "not-dlfs") == 0) {
        hid_t f = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dims[1] = {4};
        int v[4] = {1, 2, 3, 4};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t d = H5Dcreate2(f, "values", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(d);
        H5Sclose(sp);
        return H5Fclose(f) < 0;
    }
    if (argc == 4 && strcmp(argv[1], "bad-label") == 0) {
        hid_t f = H5Fopen(argv[2], H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) return 1;
        hid_t d = H5Dopen2(f, "/train/labels", H5P_DEFAULT);
        hid_t fs = H5Dget_space(d);
        hsize_t start[1] = {345}, count[1] = {1};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(1, count, NULL);
        unsigned char v = (unsigned char)atoi(argv[3]);
        herr_t e = H5Dwrite(d, H5T_NATIVE_UCHAR, ms, fs, H5P_DEFAULT, &v);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Dclose(d);
        return (H5Fclose(f) < 0) || e < 0;
    }
    if (argc == 5 && strcmp(argv[1], "set-attr") == 0) {
        hid_t f = H5Fopen(argv[2], H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) return 1;
        hid_t a = H5Aopen(f, argv[3], H5P_DEFAULT);
        long long v = atoll(argv[4]);
        herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
        if (a >= 0) H5Aclose(a);
        return (H5Fclose(f) < 0) || e < 0;
    }
    fprintf(stderr, "usage: mkbad not-dlfs OUT.h5 | bad-label FILE.h5 VALUE | set-attr FILE.h5 NAME VALUE\n");
    return 2;
}
